terraform {
  required_version = ">= 1.6"
  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = "1.68.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.9.0"
    }
  }
}

# The same modules as envs/hetzner, pointed at a Hetzner-Cloud-compatible API
# on the loopback interface (aigw-hcloudfake; scripts/tf-check.sh starts one).
provider "hcloud" {
  token         = var.hcloud_token
  endpoint      = var.hcloud_endpoint
  poll_interval = "50ms"
  poll_function = "constant"
}

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
  # Keep state out of the repository: configure a remote backend here (e.g. an
  # S3-compatible bucket) with `terraform init -backend-config=...`.
}

provider "hcloud" {
  token = var.hcloud_token
}

mock_provider "hcloud" {
  mock_resource "hcloud_network" {
    defaults = { id = "101" }
  }
  mock_resource "hcloud_firewall" {
    defaults = { id = "102" }
  }
  mock_resource "hcloud_placement_group" {
    defaults = { id = "103" }
  }
  mock_resource "hcloud_ssh_key" {
    defaults = { id = "104" }
  }
  mock_resource "hcloud_server" {
    defaults = {
      id           = "105"
      ipv4_address = "203.0.113.30"
    }
  }
}
mock_provider "random" {}

variables {
  hcloud_token      = "0123456789012345678901234567890123456789012345678901234567890123"
  aigw_version      = "1.2.3"
  ssh_public_keys   = { ops = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDfYgG5qXTXAMlHXnsxKQEhHdVxQHu4axjVJ9j4SvKxC ops" }
  ssh_allowed_cidrs = ["198.51.100.7/32"]
  domain            = "api.example.com"
  gpu_pools = {
    "gpu-a100" = { slots = 2, labels = { gpu = "a100" }, cloud_count = 1 }
    "gpu-l4"   = { cloud_count = 2 }
  }
}

run "production_defaults" {
  assert {
    condition     = length(module.openfaas.servers) == 1 && module.redis.node_count == 6 && length(module.mongodb.hosts) == 3
    error_message = "defaults: 1 API server, 3x2 Redis nodes, 3 MongoDB members"
  }
  assert {
    condition     = length(output.worker_inventory) == 3
    error_message = "three cloud workers over two pools"
  }
  assert {
    condition     = output.gateway_url == "https://api.example.com"
    error_message = "gateway URL"
  }
  assert {
    condition     = length(output.cloud_init_documents) == 1 + 6 + 3 + 3
    error_message = "one cloud-init per cloud server"
  }
  assert {
    condition     = length(distinct(flatten([output.redis_endpoints, module.mongodb.hosts, [for w in output.worker_inventory : w.private_ip]]))) == 12
    error_message = "private addresses never collide"
  }
  assert {
    condition     = startswith(output.mongodb_endpoint, "mongodb://10.40.0.20:27017,")
    error_message = "private MongoDB endpoint"
  }
}

run "rejects_short_token" {
  command = plan
  variables {
    hcloud_token = "short"
  }
  expect_failures = [var.hcloud_token]
}

run "rejects_missing_ssh_keys" {
  command = plan
  variables {
    ssh_public_keys = {}
  }
  expect_failures = [var.ssh_public_keys]
}

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
}
mock_provider "random" {}

variables {
  hcloud_token    = "0123456789012345678901234567890123456789012345678901234567890123"
  hcloud_endpoint = "http://127.0.0.1:8080/v1"
}

run "small_environment" {
  assert {
    condition     = output.server_count == 1 + 3 + 3 + 1
    error_message = "1 API server, 3 Redis masters, 3 MongoDB members, 1 worker"
  }
  assert {
    condition     = length(output.cloud_init_documents) == output.server_count
    error_message = "one cloud-init per server"
  }
}

run "refuses_a_remote_endpoint" {
  command = plan
  variables {
    hcloud_endpoint = "https://api.hetzner.cloud/v1"
  }
  expect_failures = [var.hcloud_endpoint]
}

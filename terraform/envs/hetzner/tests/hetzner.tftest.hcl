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
  jwt_signing_key   = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDGcSDhQAVrfSQJWzEQgg/kuDw9hhC6RdJAaLhKtN7iu\n-----END PRIVATE KEY-----\n"
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
    condition     = length(output.cloud_init_documents) == 1 + 1 + 6 + 3 + 3
    error_message = "one cloud-init per cloud server (API, object store, Redis, MongoDB, workers)"
  }
  assert {
    condition     = length(distinct(flatten([output.redis_endpoints, module.mongodb.hosts, [for w in output.worker_inventory : w.private_ip]]))) == 12
    error_message = "private addresses never collide"
  }
  assert {
    condition     = startswith(output.mongodb_endpoint, "mongodb://10.40.0.20:27017,")
    error_message = "private MongoDB endpoint"
  }
  assert {
    condition = alltrue([for n in ["aigw-admin-token", "aigw-jwt-signing-key", "aigw-mongo-uri", "aigw-redis-addrs", "aigw-redis-password"] :
      contains([for f in yamldecode(output.cloud_init_documents["aigw-prod-api-1"]).write_files : f.path], "/etc/aigw/secrets/${n}")
    ])
    error_message = "every secret stack.yml names (admin token and JWT signing key included) is written for faas-cli secret create"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init_documents["aigw-prod-api-1"]).write_files : f.content if f.path == "/etc/aigw/secrets/aigw-jwt-signing-key"] == [var.jwt_signing_key]
    error_message = "aigw-jwt-signing-key is the jwt_signing_key variable"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init_documents["aigw-prod-api-1"]).write_files : f.content if f.path == "/etc/aigw/secrets/aigw-admin-token"] == [output.admin_token]
    error_message = "aigw-admin-token is the generated admin token, also in output admin_token"
  }
  assert {
    condition     = random_password.admin_token.length >= 32 && !random_password.admin_token.special
    error_message = "the admin token is long and shell-safe (no special characters)"
  }
  assert {
    condition     = strcontains([for f in yamldecode(output.cloud_init_documents["aigw-prod-api-1"]).write_files : f.content if f.path == "/usr/local/sbin/aigw-deploy"][0], "export AIGW_GATEWAY_URL=http://gateway:8080")
    error_message = "the deploy script gives stack.yml the gateway's address as seen from the functions"
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

run "rejects_a_signing_key_that_is_not_pkcs8_pem" {
  command = plan
  variables {
    jwt_signing_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
  }
  expect_failures = [var.jwt_signing_key]
}

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
    condition     = output.server_count == 1 + 1 + 3 + 3 + 1
    error_message = "1 API server, 1 object store, 3 Redis masters, 3 MongoDB members, 1 worker"
  }
  assert {
    condition     = length(output.cloud_init_documents) == output.server_count
    error_message = "one cloud-init per server"
  }
  assert {
    condition = alltrue([for n in ["aigw-admin-token", "aigw-jwt-signing-key", "aigw-mongo-uri", "aigw-redis-addrs", "aigw-redis-password"] :
      contains([for f in yamldecode(output.cloud_init_documents["aigw-local-api-1"]).write_files : f.path], "/etc/aigw/secrets/${n}")
    ])
    error_message = "every secret stack.yml names (admin token and JWT signing key included) is written for faas-cli secret create"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init_documents["aigw-local-api-1"]).write_files : f.content if f.path == "/etc/aigw/secrets/aigw-jwt-signing-key"] == [var.jwt_signing_key]
    error_message = "aigw-jwt-signing-key is the jwt_signing_key variable"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init_documents["aigw-local-api-1"]).write_files : f.content if f.path == "/etc/aigw/secrets/aigw-admin-token"] == [output.admin_token]
    error_message = "aigw-admin-token is the generated admin token, also in output admin_token"
  }
  assert {
    condition     = random_password.admin_token.length >= 32 && !random_password.admin_token.special
    error_message = "the admin token is long and shell-safe (no special characters)"
  }
  assert {
    condition     = strcontains([for f in yamldecode(output.cloud_init_documents["aigw-local-api-1"]).write_files : f.content if f.path == "/usr/local/sbin/aigw-deploy"][0], "export AIGW_GATEWAY_URL=http://gateway:8080")
    error_message = "the deploy script gives stack.yml the gateway's address as seen from the functions"
  }
  assert {
    condition     = startswith(var.jwt_signing_key, "-----BEGIN PRIVATE KEY-----\n")
    error_message = "envs/local applies without input: a default (test-only) signing key"
  }
}

run "refuses_a_remote_endpoint" {
  command = plan
  variables {
    hcloud_endpoint = "https://api.hetzner.cloud/v1"
  }
  expect_failures = [var.hcloud_endpoint]
}

run "rejects_a_signing_key_that_is_not_pkcs8_pem" {
  command = plan
  variables {
    jwt_signing_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
  }
  expect_failures = [var.jwt_signing_key]
}

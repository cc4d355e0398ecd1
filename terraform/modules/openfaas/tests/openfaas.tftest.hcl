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
      ipv4_address = "203.0.113.10"
    }
  }
}
mock_provider "random" {}

variables {
  name             = "aigw-test"
  network_id       = "1"
  subnet_ip_range  = "10.40.0.0/20"
  private_ip_range = "10.40.0.0/16"
  host_offset      = 10
  aigw_version     = "1.2.3"
  stack_yml        = "version: 1.0\nfunctions: {}\n"
  function_secrets = { "aigw-redis-password" = "s3cret" }
}

run "two_api_servers_with_domain" {
  variables {
    server_count = 2
    domain       = "api.example.com"
    acme_email   = "ops@example.com"
  }

  assert {
    condition     = length(hcloud_server.api) == 2
    error_message = "server_count servers"
  }
  assert {
    condition     = output.gateway_url == "https://api.example.com"
    error_message = "the gateway URL uses the domain"
  }
  assert {
    condition     = random_password.gateway.length == 32 && output.gateway_password == random_password.gateway.result
    error_message = "a generated gateway password"
  }
  assert {
    condition     = can(regex("(?s)api.example.com \\{\n.*\treverse_proxy 127.0.0.1:8080\n}", yamldecode(output.cloud_init[0]).write_files[4].content))
    error_message = "Caddy terminates TLS for the domain and proxies to the gateway"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[4].content, "@metrics path_regexp ^/(async-)?function/.*/_/+metrics\n\trespond @metrics 404\n\treverse_proxy")
    error_message = "Caddy answers 404 to /function/NAME/_/metrics before it proxies"
  }
  assert {
    condition     = yamldecode(output.cloud_init[1]).write_files[2].content == "version: 1.0\nfunctions: {}\n"
    error_message = "stack.yml is shipped to every API server"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[5].content, "faas-cli deploy -f /etc/aigw/stack.yml")
    error_message = "cloud-init deploys the functions from stack.yml"
  }
  assert {
    condition     = yamldecode(output.cloud_init[0]).write_files[6].path == "/etc/aigw/secrets/aigw-redis-password"
    error_message = "function secrets are written for faas-cli secret create"
  }
  assert {
    condition     = can(regex("(?s)\n\texport AIGW_GATEWAY_URL=http://gateway:8080\n.*\tfaas-cli deploy -f /etc/aigw/stack.yml", yamldecode(output.cloud_init[0]).write_files[5].content))
    error_message = "the deploy script exports AIGW_GATEWAY_URL=http://gateway:8080 (the functions' way to the gateway on faasd) before faas-cli deploy"
  }
}

run "multi_line_and_every_secret_written" {
  variables {
    function_secrets = {
      "aigw-redis-password"  = "s3cret"
      "aigw-admin-token"     = "0123456789abcdefghijABCDEFGHIJ0123456789abcdefgh"
      "aigw-jwt-signing-key" = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKPjp3WwsIKEqGbeODdk9sOgMX8UJIdoTpC79twbyIsA\n-----END PRIVATE KEY-----\n"
    }
  }

  assert {
    condition = [for f in yamldecode(output.cloud_init[0]).write_files : f.path if startswith(f.path, "/etc/aigw/secrets/")] == [
      "/etc/aigw/secrets/aigw-admin-token",
      "/etc/aigw/secrets/aigw-jwt-signing-key",
      "/etc/aigw/secrets/aigw-redis-password",
    ]
    error_message = "one file per function secret, sorted by name"
  }
  assert {
    condition     = [for f in yamldecode(output.cloud_init[0]).write_files : f.content if f.path == "/etc/aigw/secrets/aigw-jwt-signing-key"][0] == "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKPjp3WwsIKEqGbeODdk9sOgMX8UJIdoTpC79twbyIsA\n-----END PRIVATE KEY-----\n"
    error_message = "a PEM secret survives cloud-init's YAML byte for byte"
  }
  assert {
    condition     = alltrue([for f in yamldecode(output.cloud_init[0]).write_files : f.permissions == "0600" if startswith(f.path, "/etc/aigw/secrets/")])
    error_message = "secret files are readable by root only"
  }
}

run "prometheus_scrapes_the_annotated_functions" {
  variables {
    stack_yml = <<-EOT
      version: 1.0
      functions:
        router:
          image: ghcr.io/aigw/router:1.2.3
          annotations:
            prometheus.io.scrape: "true"
            prometheus.io.path: /_/metrics
        plain:
          image: ghcr.io/aigw/plain:1.2.3
    EOT
  }

  assert {
    condition     = [for f in yamldecode(output.cloud_init[0]).write_files : f.path if f.path == "/etc/aigw/prometheus.yml"] == ["/etc/aigw/prometheus.yml"]
    error_message = "a Prometheus configuration is shipped"
  }
  assert {
    condition = [for j in yamldecode([for f in yamldecode(output.cloud_init[0]).write_files : f.content if f.path == "/etc/aigw/prometheus.yml"][0]).scrape_configs : {
      job = j.job_name, path = try(j.metrics_path, "/metrics"), targets = j.static_configs[0].targets
      }] == [
      { job = "prometheus", path = "/metrics", targets = ["localhost:9090"] },
      { job = "gateway", path = "/metrics", targets = ["gateway:8082"] },
      { job = "aigw-router", path = "/function/router/_/metrics", targets = ["gateway:8080"] },
    ]
    error_message = "faasd's Prometheus keeps its jobs and scrapes the annotated functions (only) through the gateway"
  }
  assert {
    condition     = strcontains([for f in yamldecode(output.cloud_init[0]).write_files : f.content if f.path == "/usr/local/sbin/aigw-deploy"][0], "install -m 0644 /etc/aigw/prometheus.yml /var/lib/faasd/prometheus.yml\nsystemctl restart faasd faasd-provider")
    error_message = "the deploy script installs the configuration before faasd restarts"
  }
}

run "ip_only_uses_internal_tls" {
  assert {
    condition     = output.gateway_url == "https://203.0.113.10"
    error_message = "without a domain the URL is the first server's IPv4"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[4].content, "tls internal")
    error_message = "without a domain Caddy uses its internal CA"
  }
}

run "rejects_eleven_servers" {
  command = plan
  variables {
    server_count = 11
  }
  expect_failures = [var.server_count]
}

run "rejects_arm_type" {
  command = plan
  variables {
    server_type = "cax21"
  }
  expect_failures = [var.server_type]
}

run "rejects_v_prefixed_version" {
  command = plan
  variables {
    aigw_version = "v1.2.3"
  }
  expect_failures = [var.aigw_version]
}

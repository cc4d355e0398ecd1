# API servers: faasd (OpenFaaS without Kubernetes) with every aigw function,
# Caddy in front for TLS, and a gateway basic-auth password generated here.
# faasd's Prometheus scrapes the functions' metrics (/etc/aigw/prometheus.yml);
# Caddy keeps /function/NAME/_/metrics from the public.

resource "random_password" "gateway" {
  length  = 32
  special = false
}

locals {
  names = [for i in range(var.server_count) : format("%s-api-%d", var.name, i + 1)]
  ips   = [for i in range(var.server_count) : cidrhost(var.subnet_ip_range, var.host_offset + i)]

  caddyfile = templatefile("${path.module}/templates/Caddyfile.tftpl", {
    domain     = var.domain
    acme_email = var.acme_email
  })
  # The functions stack.yml asks Prometheus to scrape (annotation
  # prometheus.io.scrape: "true"), at their prometheus.io.path.
  scraped = var.stack_yml == "" ? [] : [
    for name, f in try(yamldecode(var.stack_yml).functions, {}) : {
      name = name
      path = try(f.annotations["prometheus.io.path"], "/metrics")
    } if try(f.annotations["prometheus.io.scrape"], "") == "true"
  ]
  prometheus_yml = templatefile("${path.module}/templates/prometheus.yml.tftpl", { functions = local.scraped })
  deploy_sh = templatefile("${path.module}/templates/deploy.sh.tftpl", {
    faasd_version    = var.faasd_version
    faas_cli_version = var.faas_cli_version
    aigw_version     = var.aigw_version
  })

  cloud_init = [for i, n in local.names : join("\n", ["#cloud-config", yamlencode({
    hostname        = n
    package_update  = true
    package_upgrade = false
    packages        = ["curl", "ca-certificates", "caddy"]
    write_files = concat([
      { path = "/etc/aigw/basic-auth-user", permissions = "0600", content = "admin" },
      { path = "/etc/aigw/basic-auth-password", permissions = "0600", content = random_password.gateway.result },
      { path = "/etc/aigw/stack.yml", permissions = "0644", content = var.stack_yml },
      { path = "/etc/aigw/private-ip", permissions = "0644", content = local.ips[i] },
      { path = "/etc/caddy/Caddyfile", permissions = "0644", content = local.caddyfile },
      { path = "/usr/local/sbin/aigw-deploy", permissions = "0755", content = local.deploy_sh },
      ], [for k in sort(nonsensitive(keys(var.function_secrets))) : {
        path = "/etc/aigw/secrets/${k}", permissions = "0600", content = var.function_secrets[k]
      }], [
      { path = "/etc/aigw/prometheus.yml", permissions = "0644", content = local.prometheus_yml },
    ])
    runcmd = [["/usr/local/sbin/aigw-deploy"]]
  })])]
}

resource "hcloud_placement_group" "this" {
  name   = "${var.name}-api"
  type   = "spread"
  labels = var.labels
}

resource "hcloud_server" "api" {
  count              = var.server_count
  name               = local.names[count.index]
  server_type        = var.server_type
  image              = var.image
  location           = var.location
  ssh_keys           = var.ssh_key_ids
  firewall_ids       = var.firewall_ids
  placement_group_id = hcloud_placement_group.this.id
  user_data          = local.cloud_init[count.index]
  labels             = merge(var.labels, { "aigw/role" = "api" })

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  network {
    network_id = var.network_id
    ip         = local.ips[count.index]
    alias_ips  = []
  }

  lifecycle {
    # A changed cloud-init only matters for new servers; re-run aigw-deploy by hand
    # (or replace the server with -replace) to roll out a new stack.yml.
    ignore_changes = [user_data]
  }
}

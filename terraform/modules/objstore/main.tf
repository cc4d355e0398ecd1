# The S3-compatible object store of an environment: one server running
# versitygw (the same server as `make up` and CI, posix backend on the
# server's disk) on its private address for aigw's functions and workers, and
# Caddy on 443 in front of it for clients, who reach objects only through
# presigned URLs (AIGW_S3_PUBLIC_ENDPOINT). Generated root keys.

resource "random_password" "access_key" {
  length  = 20
  special = false
  upper   = true
  lower   = false
}

resource "random_password" "secret_key" {
  length  = 40
  special = false
}

locals {
  hostname      = "${var.name}-objstore"
  ip            = cidrhost(var.subnet_ip_range, var.host_offset)
  versitygw_url = var.versitygw_url != "" ? var.versitygw_url : "https://github.com/aigw/aigw/releases/download/v${var.aigw_version}/versitygw_linux_amd64"

  nftables = templatefile("${path.module}/templates/nftables.conf.tftpl", {
    port             = var.port
    private_ip_range = var.private_ip_range
  })

  cloud_init = join("\n", ["#cloud-config", yamlencode({
    hostname       = local.hostname
    package_update = true
    packages       = ["curl", "ca-certificates", "caddy", "nftables"]
    write_files = [
      { path = "/etc/aigw/objstore.env", permissions = "0600", content = templatefile("${path.module}/templates/objstore.env.tftpl", {
        access_key = random_password.access_key.result
        secret_key = random_password.secret_key.result
        region     = var.region
      }) },
      { path = "/etc/aigw/nftables.conf", permissions = "0644", content = local.nftables },
      { path = "/etc/caddy/Caddyfile", permissions = "0644", content = templatefile("${path.module}/templates/Caddyfile.tftpl", {
        domain     = var.domain
        acme_email = var.acme_email
        upstream   = "${local.ip}:${var.port}"
      }) },
      { path = "/etc/systemd/system/versitygw.service", permissions = "0644", content = templatefile("${path.module}/templates/versitygw.service.tftpl", {
        listen = "${local.ip}:${var.port}"
      }) },
      { path = "/usr/local/sbin/aigw-objstore-setup", permissions = "0755", content = templatefile("${path.module}/templates/setup.sh.tftpl", {
        versitygw_url = local.versitygw_url
        bucket        = var.bucket
      }) },
    ]
    runcmd = [["/usr/local/sbin/aigw-objstore-setup"]]
  })])
}

resource "hcloud_server" "this" {
  name         = local.hostname
  server_type  = var.server_type
  image        = var.image
  location     = var.location
  ssh_keys     = var.ssh_key_ids
  firewall_ids = var.firewall_ids
  user_data    = local.cloud_init
  labels       = merge(var.labels, { "aigw/role" = "objstore" })

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  network {
    network_id = var.network_id
    ip         = local.ip
    alias_ips  = []
  }

  lifecycle {
    # The objects live on this server's disk: never replace it for a changed
    # cloud-init.
    ignore_changes = [user_data]
  }
}

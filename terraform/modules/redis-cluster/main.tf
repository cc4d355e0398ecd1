# A Redis Cluster of masters × (1 + replicas_per_master) nodes on private
# addresses. Every node gets the same password; the first node creates the
# cluster with `redis-cli --cluster create` once all nodes answer.

resource "random_password" "redis" {
  length  = 40
  special = false
}

locals {
  node_count = var.masters * (1 + var.replicas_per_master)
  names      = [for i in range(local.node_count) : format("%s-redis-%d", var.name, i + 1)]
  ips        = [for i in range(local.node_count) : cidrhost(var.subnet_ip_range, var.host_offset + i)]
  endpoints  = [for ip in local.ips : "${ip}:${var.port}"]

  nftables = templatefile("${path.module}/templates/nftables.conf.tftpl", {
    ports            = [var.port, var.port + 10000]
    private_ip_range = var.private_ip_range
  })

  cloud_init = [for i, n in local.names : join("\n", ["#cloud-config", yamlencode({
    hostname       = n
    package_update = true
    packages       = ["redis-server", "redis-tools", "nftables"]
    write_files = [
      { path = "/etc/aigw/redis-password", permissions = "0600", content = random_password.redis.result },
      { path = "/etc/aigw/nftables.conf", permissions = "0644", content = local.nftables },
      { path = "/etc/aigw/redis.conf", permissions = "0600", content = templatefile("${path.module}/templates/redis.conf.tftpl", {
        private_ip  = local.ips[i]
        port        = var.port
        password    = random_password.redis.result
        appendonly  = var.appendonly
        appendfsync = var.appendfsync
        save        = var.save
      }) },
      { path = "/usr/local/sbin/aigw-redis-setup", permissions = "0755", content = templatefile("${path.module}/templates/setup.sh.tftpl", {
        private_ip        = local.ips[i]
        port              = var.port
        maxmemory_percent = var.maxmemory_percent
        create_cluster    = i == 0
        nodes             = local.endpoints
        replicas          = var.replicas_per_master
      }) },
    ]
    runcmd = [["/usr/local/sbin/aigw-redis-setup"]]
  })])]
}

resource "hcloud_placement_group" "this" {
  name   = "${var.name}-redis"
  type   = "spread"
  labels = var.labels
}

resource "hcloud_server" "node" {
  count        = local.node_count
  name         = local.names[count.index]
  server_type  = var.server_type
  image        = var.image
  location     = var.location
  ssh_keys     = var.ssh_key_ids
  firewall_ids = var.firewall_ids
  # A spread group holds at most 10 servers.
  placement_group_id = count.index < 10 ? hcloud_placement_group.this.id : null
  user_data          = local.cloud_init[count.index]
  labels             = merge(var.labels, { "aigw/role" = "redis" })

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
    ignore_changes = [user_data]
  }
}

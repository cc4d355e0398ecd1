# A MongoDB replica set of `members` servers on private addresses, with a
# generated keyfile (internal authentication), an admin user and an aigw
# application user. The first member initiates the set once all answer.

resource "random_password" "admin" {
  length  = 32
  special = false
}

resource "random_password" "app" {
  length  = 32
  special = false
}

# Keyfile: base64 text of 6 to 1024 characters.
resource "random_bytes" "keyfile" {
  length = 756
}

locals {
  names   = [for i in range(var.members) : format("%s-mongo-%d", var.name, i + 1)]
  ips     = [for i in range(var.members) : cidrhost(var.subnet_ip_range, var.host_offset + i)]
  members = [for ip in local.ips : "${ip}:${var.port}"]

  nftables = templatefile("${path.module}/templates/nftables.conf.tftpl", {
    ports            = [var.port]
    private_ip_range = var.private_ip_range
  })

  cloud_init = [for i, n in local.names : join("\n", ["#cloud-config", yamlencode({
    hostname       = n
    package_update = true
    packages       = ["curl", "gnupg", "ca-certificates", "nftables"]
    write_files = concat([
      { path = "/etc/aigw/mongod.key", permissions = "0400", content = random_bytes.keyfile.base64 },
      { path = "/etc/aigw/nftables.conf", permissions = "0644", content = local.nftables },
      { path = "/etc/aigw/mongod.conf", permissions = "0644", content = templatefile("${path.module}/templates/mongod.conf.tftpl", {
        port             = var.port
        private_ip       = local.ips[i]
        replica_set_name = var.replica_set_name
      }) },
      { path = "/usr/local/sbin/aigw-mongodb-setup", permissions = "0755", content = templatefile("${path.module}/templates/setup.sh.tftpl", {
        mongodb_version = var.mongodb_version
        initiate        = i == 0
        members         = local.members
        port            = var.port
      }) },
      ], i != 0 ? [] : [
      { path = "/etc/aigw/mongo-admin-password", permissions = "0600", content = random_password.admin.result },
      { path = "/etc/aigw/mongo-init.js", permissions = "0600", content = templatefile("${path.module}/templates/init.js.tftpl", {
        members          = local.members
        replica_set_name = var.replica_set_name
        admin_password   = random_password.admin.result
      }) },
      { path = "/etc/aigw/mongo-users.js", permissions = "0600", content = templatefile("${path.module}/templates/users.js.tftpl", {
        database     = var.database
        app_password = random_password.app.result
      }) },
    ])
    runcmd = [["/usr/local/sbin/aigw-mongodb-setup"]]
  })])]
}

resource "hcloud_placement_group" "this" {
  name   = "${var.name}-mongo"
  type   = "spread"
  labels = var.labels
}

resource "hcloud_server" "member" {
  count              = var.members
  name               = local.names[count.index]
  server_type        = var.server_type
  image              = var.image
  location           = var.location
  ssh_keys           = var.ssh_key_ids
  firewall_ids       = var.firewall_ids
  placement_group_id = hcloud_placement_group.this.id
  user_data          = local.cloud_init[count.index]
  labels             = merge(var.labels, { "aigw/role" = "mongodb" })

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

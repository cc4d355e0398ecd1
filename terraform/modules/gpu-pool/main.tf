# A pool of GPU workers, made of Hetzner Cloud servers (cloud_count, set up by
# cloud-init) and/or existing dedicated GPU servers (dedicated_hosts,
# bootstrapped over SSH with terraform_data + remote-exec). Each node gets the
# NVIDIA driver, python3 with torch, the reference algorithms of the release
# (registered in MongoDB with `aigw-worker register`) and aigw-worker as a
# systemd unit with its pool, slots, labels.

locals {
  worker_url     = var.worker_url != "" ? var.worker_url : "https://github.com/aigw/aigw/releases/download/v${var.aigw_version}/aigw-worker_linux_amd64"
  algorithms_url = var.algorithms_url != "" ? var.algorithms_url : "https://github.com/aigw/aigw/releases/download/v${var.aigw_version}/aigw-algorithms_linux_amd64.tar.gz"
  labels_csv     = join(",", [for k in sort(keys(var.worker_labels)) : "${k}=${var.worker_labels[k]}"])
  redis_addrs    = join(",", var.redis_endpoints)
  unit           = file("${path.module}/templates/aigw-worker.service")
  bootstrap = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
    aigw_version          = var.aigw_version
    worker_url            = local.worker_url
    algorithms_url        = local.algorithms_url
    install_nvidia_driver = var.install_nvidia_driver
    install_python_torch  = var.install_python_torch
  })

  cloud_names = [for i in range(var.cloud_count) : format("%s-%s-%d", var.name, var.pool, i + 1)]
  cloud_ips   = [for i in range(var.cloud_count) : cidrhost(var.subnet_ip_range, var.host_offset + i)]

  env = { for n in concat(
    [for i, name in local.cloud_names : { name = name, ip = local.cloud_ips[i] }],
    [for h in var.dedicated_hosts : { name = h.name, ip = h.private_ip }],
    ) : n.name => templatefile("${path.module}/templates/worker.env.tftpl", {
      pool           = var.pool
      slots          = var.slots
      labels         = local.labels_csv
      node_name      = n.name
      private_ip     = n.ip
      redis_addrs    = local.redis_addrs
      redis_password = var.redis_password
      mongo_uri      = var.mongo_uri
      objstore       = var.objstore
  }) }

  cloud_init = [for i, n in local.cloud_names : join("\n", ["#cloud-config", yamlencode({
    hostname       = n
    package_update = true
    packages       = ["curl", "ca-certificates", "pciutils"]
    write_files = [
      { path = "/etc/aigw/worker.env", permissions = "0600", content = local.env[n] },
      { path = "/etc/aigw/aigw-worker.service", permissions = "0644", content = local.unit },
      { path = "/usr/local/sbin/aigw-worker-bootstrap", permissions = "0755", content = local.bootstrap },
    ]
    runcmd = [["/usr/local/sbin/aigw-worker-bootstrap"]]
  })])]

  dedicated = { for h in var.dedicated_hosts : h.name => h }
}

resource "hcloud_placement_group" "this" {
  count  = var.cloud_count > 0 ? 1 : 0
  name   = "${var.name}-${var.pool}"
  type   = "spread"
  labels = var.labels
}

resource "hcloud_server" "worker" {
  count              = var.cloud_count
  name               = local.cloud_names[count.index]
  server_type        = var.server_type
  image              = var.image
  location           = var.location
  ssh_keys           = var.ssh_key_ids
  firewall_ids       = var.firewall_ids
  placement_group_id = count.index < 10 ? hcloud_placement_group.this[0].id : null
  user_data          = local.cloud_init[count.index]
  labels             = merge(var.labels, { "aigw/role" = "worker", "aigw/pool" = var.pool })

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  network {
    network_id = var.network_id
    ip         = local.cloud_ips[count.index]
    alias_ips  = []
  }

  lifecycle {
    ignore_changes = [user_data]
  }
}

# Dedicated servers: copy the files and run the bootstrap over SSH. A change of
# version, settings or credentials re-runs it.
resource "terraform_data" "dedicated" {
  for_each = local.dedicated

  triggers_replace = {
    bootstrap = sha256(local.bootstrap)
    env       = sha256(local.env[each.key])
    unit      = sha256(local.unit)
    address   = each.value.address
  }

  connection {
    type        = "ssh"
    host        = each.value.address
    user        = each.value.ssh_user
    private_key = var.ssh_private_key
    timeout     = "5m"
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p /etc/aigw /usr/local/sbin"]
  }

  provisioner "file" {
    content     = local.env[each.key]
    destination = "/etc/aigw/worker.env"
  }

  provisioner "file" {
    content     = local.unit
    destination = "/etc/aigw/aigw-worker.service"
  }

  provisioner "file" {
    content     = local.bootstrap
    destination = "/usr/local/sbin/aigw-worker-bootstrap"
  }

  provisioner "remote-exec" {
    inline = [
      "chmod 0600 /etc/aigw/worker.env",
      "chmod 0755 /usr/local/sbin/aigw-worker-bootstrap",
      "/usr/local/sbin/aigw-worker-bootstrap",
    ]
  }

  lifecycle {
    precondition {
      condition     = var.ssh_private_key != ""
      error_message = "ssh_private_key is required to bootstrap dedicated_hosts."
    }
  }
}

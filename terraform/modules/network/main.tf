# One private network with one cloud subnet for every aigw server, and two
# firewalls for the public interfaces:
#   - "public":   80/443 from anywhere (the API servers behind Caddy),
#   - "internal": nothing public at all (Redis, MongoDB, workers).
# Both allow SSH only from ssh_allowed_cidrs, and ICMP. Hetzner firewalls
# filter public interfaces only; the services themselves bind to their private
# address and a host firewall (set up by cloud-init) admits their ports from
# the private network only.

locals {
  ssh_rules = length(var.ssh_allowed_cidrs) == 0 ? [] : [{
    description = "ssh from allowed networks"
    protocol    = "tcp"
    port        = "22"
    source_ips  = var.ssh_allowed_cidrs
  }]
  icmp_rule = {
    description = "icmp"
    protocol    = "icmp"
    port        = null
    source_ips  = ["0.0.0.0/0", "::/0"]
  }
  web_rules = [for p in ["80", "443"] : {
    description = "https gateway (${p})"
    protocol    = "tcp"
    port        = p
    source_ips  = ["0.0.0.0/0", "::/0"]
  }]
  rules = {
    public   = concat(local.web_rules, local.ssh_rules, [local.icmp_rule])
    internal = concat(local.ssh_rules, [local.icmp_rule])
  }
}

resource "hcloud_network" "this" {
  name     = var.name
  ip_range = var.ip_range
  labels   = var.labels
  # Dedicated servers on a vSwitch need the cloud routes.
  expose_routes_to_vswitch = var.vswitch_id != null
}

resource "hcloud_network_subnet" "cloud" {
  network_id   = hcloud_network.this.id
  type         = "cloud"
  network_zone = var.network_zone
  ip_range     = var.subnet_ip_range
}

resource "hcloud_network_subnet" "vswitch" {
  count        = var.vswitch_id == null ? 0 : 1
  network_id   = hcloud_network.this.id
  type         = "vswitch"
  network_zone = var.network_zone
  ip_range     = var.vswitch_ip_range
  vswitch_id   = var.vswitch_id
}

resource "hcloud_firewall" "this" {
  for_each = local.rules
  name     = "${var.name}-${each.key}"
  labels   = merge(var.labels, { "aigw/firewall" = each.key })

  dynamic "rule" {
    for_each = each.value
    content {
      direction   = "in"
      description = rule.value.description
      protocol    = rule.value.protocol
      port        = rule.value.port
      source_ips  = rule.value.source_ips
    }
  }
}

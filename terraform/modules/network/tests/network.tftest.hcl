# Firewalls: only 80/443 public; SSH only from the allowed CIDRs; no data-store
# port is ever opened on a public interface.
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

variables {
  name              = "aigw-test"
  ssh_allowed_cidrs = ["198.51.100.7/32"]
}

run "public_firewall_opens_only_web_and_ssh" {
  command = plan

  assert {
    condition     = toset([for r in hcloud_firewall.this["public"].rule : r.port if contains(r.source_ips, "0.0.0.0/0")]) == toset(["80", "443", null])
    error_message = "the public firewall must open exactly 80 and 443 (and icmp) to the internet"
  }
  assert {
    condition     = alltrue([for r in hcloud_firewall.this["public"].rule : r.source_ips == toset(["198.51.100.7/32"]) if r.port == "22"])
    error_message = "SSH must be open only to ssh_allowed_cidrs"
  }
}

run "internal_firewall_opens_nothing_public" {
  command = plan

  assert {
    condition     = length([for r in hcloud_firewall.this["internal"].rule : r if r.protocol != "icmp" && contains(r.source_ips, "0.0.0.0/0")]) == 0
    error_message = "the internal firewall must open no port to the internet"
  }
  assert {
    condition     = length(flatten([for fw in hcloud_firewall.this : [for r in fw.rule : r if contains(["6379", "16379", "27017"], coalesce(r.port, "-"))]])) == 0
    error_message = "Redis and MongoDB ports must never be opened on a public interface"
  }
}

run "no_public_ssh_without_cidrs" {
  command = plan
  variables {
    ssh_allowed_cidrs = []
  }
  assert {
    condition     = length(flatten([for fw in hcloud_firewall.this : [for r in fw.rule : r if r.port == "22"]])) == 0
    error_message = "without ssh_allowed_cidrs no firewall may open port 22"
  }
}

run "vswitch_subnet_only_when_asked" {
  command = plan
  assert {
    condition     = length(hcloud_network_subnet.vswitch) == 0 && hcloud_network_subnet.cloud.type == "cloud"
    error_message = "no vswitch subnet by default"
  }
}

run "vswitch_subnet" {
  command = plan
  variables {
    vswitch_id = 12345
  }
  assert {
    condition     = length(hcloud_network_subnet.vswitch) == 1 && hcloud_network.this.expose_routes_to_vswitch
    error_message = "a vswitch_id adds a vswitch subnet and exposes the routes"
  }
}

run "rejects_ssh_from_everywhere" {
  command = plan
  variables {
    ssh_allowed_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.ssh_allowed_cidrs]
}

run "rejects_public_ip_range" {
  command = plan
  variables {
    ip_range = "8.8.0.0/16"
  }
  expect_failures = [var.ip_range]
}

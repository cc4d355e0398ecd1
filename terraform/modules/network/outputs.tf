output "network_id" {
  description = "ID of the private network. Read through the subnet, so servers that use it wait for the subnet."
  value       = hcloud_network_subnet.cloud.network_id
}

output "subnet_ip_range" {
  description = "The cloud subnet every server takes its private address from."
  value       = hcloud_network_subnet.cloud.ip_range
}

output "ip_range" {
  description = "The whole private network range (what host firewalls admit)."
  value       = hcloud_network.this.ip_range
}

output "public_firewall_id" {
  description = "Firewall for API servers: 80/443 public, SSH from allowed CIDRs."
  value       = hcloud_firewall.this["public"].id
}

output "internal_firewall_id" {
  description = "Firewall for Redis, MongoDB and workers: no public ports except SSH from allowed CIDRs."
  value       = hcloud_firewall.this["internal"].id
}

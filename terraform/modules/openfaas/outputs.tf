output "gateway_url" {
  description = "HTTPS URL of the OpenFaaS gateway (the domain, or the first API server's IPv4)."
  value       = "https://${var.domain != "" ? var.domain : hcloud_server.api[0].ipv4_address}"
}

output "gateway_user" {
  description = "Basic-auth user of the gateway."
  value       = "admin"
}

output "gateway_password" {
  description = "Basic-auth password of the gateway (generated)."
  value       = random_password.gateway.result
  sensitive   = true
}

output "servers" {
  description = "API servers: name, public IPv4, private IP."
  value = [for s in hcloud_server.api : {
    name       = s.name
    ipv4       = s.ipv4_address
    private_ip = tolist(s.network)[0].ip
  }]
}

output "cloud_init" {
  description = "Rendered cloud-init of each API server (for validation)."
  value       = local.cloud_init
  sensitive   = true
}

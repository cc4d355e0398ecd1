output "endpoints" {
  description = "Private host:port of every Redis node (seed list for a cluster client)."
  value       = [for i, s in hcloud_server.node : "${tolist(s.network)[0].ip}:${var.port}"]
}

output "password" {
  description = "Redis password (requirepass and masterauth)."
  value       = random_password.redis.result
  sensitive   = true
}

output "node_count" {
  description = "Number of Redis nodes: masters × (1 + replicas_per_master)."
  value       = local.node_count
}

output "cloud_init" {
  description = "Rendered cloud-init of each Redis node (for validation)."
  value       = local.cloud_init
  sensitive   = true
}

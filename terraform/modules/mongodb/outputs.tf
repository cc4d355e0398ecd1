output "hosts" {
  description = "Private host:port of every replica-set member."
  value       = [for s in hcloud_server.member : "${tolist(s.network)[0].ip}:${var.port}"]
}

output "endpoint" {
  description = "Connection string without credentials."
  value       = "mongodb://${join(",", [for s in hcloud_server.member : "${tolist(s.network)[0].ip}:${var.port}"])}/${var.database}?replicaSet=${var.replica_set_name}"
}

output "uri" {
  description = "Connection string of the aigw application user (AIGW_MONGO_URI)."
  value       = "mongodb://aigw:${random_password.app.result}@${join(",", [for s in hcloud_server.member : "${tolist(s.network)[0].ip}:${var.port}"])}/${var.database}?replicaSet=${var.replica_set_name}&authSource=${var.database}"
  sensitive   = true
}

output "admin_password" {
  description = "Password of the MongoDB admin user (root role)."
  value       = random_password.admin.result
  sensitive   = true
}

output "cloud_init" {
  description = "Rendered cloud-init of each member (for validation)."
  value       = local.cloud_init
  sensitive   = true
}

output "gateway_url" {
  description = "HTTPS URL of the OpenFaaS gateway."
  value       = module.openfaas.gateway_url
}

output "gateway_password" {
  description = "Basic-auth password of the gateway (user admin)."
  value       = module.openfaas.gateway_password
  sensitive   = true
}

output "admin_token" {
  description = "Admin token of the API (OpenFaaS secret aigw-admin-token): terraform output -raw admin_token."
  value       = random_password.admin_token.result
  sensitive   = true
}

output "redis_endpoints" {
  description = "Private host:port of every Redis Cluster node."
  value       = module.redis.endpoints
}

output "mongodb_endpoint" {
  description = "Private MongoDB replica-set connection string (no credentials)."
  value       = module.mongodb.endpoint
}

output "worker_inventory" {
  description = "Every worker of the local pool."
  value       = module.gpu_pool.inventory
}

output "server_count" {
  description = "Cloud servers in the environment."
  value       = length(module.openfaas.servers) + 1 + module.redis.node_count + length(module.mongodb.hosts) + length(module.gpu_pool.inventory)
}

output "cloud_init_documents" {
  description = "Rendered cloud-init of every server, by server name (validated by scripts/tf-check.sh)."
  sensitive   = true
  value = merge(
    { for i, d in module.openfaas.cloud_init : format("%s-api-%d", var.name, i + 1) => d },
    { for i, d in module.redis.cloud_init : format("%s-redis-%d", var.name, i + 1) => d },
    { for i, d in module.mongodb.cloud_init : format("%s-mongo-%d", var.name, i + 1) => d },
    { format("%s-objstore", var.name) = module.objstore.cloud_init },
    { for i, d in module.gpu_pool.cloud_init : format("%s-gpu-test-%d", var.name, i + 1) => d },
  )
}

output "objstore_endpoint" {
  description = "The S3-compatible object store: the private endpoint aigw uses and the public one of presigned URLs."
  value       = { private = module.objstore.endpoint, public = module.objstore.public_endpoint, bucket = module.objstore.bucket }
}

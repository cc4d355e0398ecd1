output "gateway_url" {
  description = "HTTPS URL of the OpenFaaS gateway (faas-cli --gateway)."
  value       = module.openfaas.gateway_url
}

output "gateway_password" {
  description = "Basic-auth password of the gateway (user admin): terraform output -raw gateway_password."
  value       = module.openfaas.gateway_password
  sensitive   = true
}

output "api_servers" {
  description = "API servers (name, public IPv4, private IP); point the domain's A record at the first."
  value       = module.openfaas.servers
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

output "redis_password" {
  description = "Redis password."
  value       = module.redis.password
  sensitive   = true
}

output "mongodb_endpoint" {
  description = "Private MongoDB replica-set connection string (no credentials)."
  value       = module.mongodb.endpoint
}

output "mongodb_uri" {
  description = "MongoDB connection string of the aigw user (AIGW_MONGO_URI)."
  value       = module.mongodb.uri
  sensitive   = true
}

output "worker_inventory" {
  description = "Every GPU worker: pool, name, kind, addresses, slots, labels."
  value       = flatten([for p in values(module.gpu_pool) : p.inventory])
}

output "cloud_init_documents" {
  description = "Rendered cloud-init of every cloud server, by server name (validated in CI)."
  sensitive   = true
  value = merge(
    { for i, d in module.openfaas.cloud_init : format("%s-api-%d", var.name, i + 1) => d },
    { for i, d in module.redis.cloud_init : format("%s-redis-%d", var.name, i + 1) => d },
    { for i, d in module.mongodb.cloud_init : format("%s-mongo-%d", var.name, i + 1) => d },
    { format("%s-objstore", var.name) = module.objstore.cloud_init },
    merge([for pool, m in module.gpu_pool : { for i, d in m.cloud_init : format("%s-%s-%d", var.name, pool, i + 1) => d }]...),
  )
}

output "objstore_endpoint" {
  description = "The S3-compatible object store: the private endpoint aigw uses and the public one of presigned URLs."
  value       = { private = module.objstore.endpoint, public = module.objstore.public_endpoint, bucket = module.objstore.bucket }
}

# Production environment on Hetzner Cloud: one `terraform apply` brings up the
# private network and firewalls, the API servers (faasd + functions + Caddy),
# a Redis Cluster, a MongoDB replica set and the GPU worker pools.
#
# Private addresses (subnet 10.40.0.0/20): .10- API servers, .20- MongoDB,
# .32- Redis nodes, host 266 + 64*k onwards the cloud workers of the k-th pool.

locals {
  labels    = { "aigw/env" = var.name }
  stack_yml = fileexists("${path.root}/../../../stack.yml") ? file("${path.root}/../../../stack.yml") : ""
}

# The admin token (OpenFaaS secret aigw-admin-token): the bearer token of auth's
# admin endpoints and of the orchestrator's /tick. Letters and digits only, so
# that it survives shells and headers unquoted; `terraform output -raw admin_token`.
resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "hcloud_ssh_key" "this" {
  for_each   = var.ssh_public_keys
  name       = "${var.name}-${each.key}"
  public_key = each.value
  labels     = local.labels
}

module "network" {
  source            = "../../modules/network"
  name              = var.name
  network_zone      = var.network_zone
  ssh_allowed_cidrs = var.ssh_allowed_cidrs
  vswitch_id        = var.vswitch_id
  labels            = local.labels
}

module "redis" {
  source              = "../../modules/redis-cluster"
  name                = var.name
  location            = var.location
  image               = var.image
  ssh_key_ids         = [for k in hcloud_ssh_key.this : k.id]
  network_id          = module.network.network_id
  subnet_ip_range     = module.network.subnet_ip_range
  private_ip_range    = module.network.ip_range
  host_offset         = 32
  firewall_ids        = [module.network.internal_firewall_id]
  labels              = local.labels
  masters             = var.redis.masters
  replicas_per_master = var.redis.replicas_per_master
  server_type         = var.redis.server_type
  appendonly          = var.redis.appendonly
  appendfsync         = var.redis.appendfsync
}

module "mongodb" {
  source           = "../../modules/mongodb"
  name             = var.name
  location         = var.location
  image            = var.image
  ssh_key_ids      = [for k in hcloud_ssh_key.this : k.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 20
  firewall_ids     = [module.network.internal_firewall_id]
  labels           = local.labels
  members          = var.mongodb.members
  server_type      = var.mongodb.server_type
  mongodb_version  = var.mongodb.version
}

module "objstore" {
  source           = "../../modules/objstore"
  name             = var.name
  location         = var.location
  image            = var.image
  ssh_key_ids      = [for k in hcloud_ssh_key.this : k.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 16
  firewall_ids     = [module.network.public_firewall_id]
  labels           = local.labels
  aigw_version     = var.aigw_version
}

locals {
  objstore = {
    endpoint        = module.objstore.endpoint
    public_endpoint = module.objstore.public_endpoint
    bucket          = module.objstore.bucket
    region          = module.objstore.region
    access_key      = module.objstore.access_key
    secret_key      = module.objstore.secret_key
  }
}

module "openfaas" {
  source           = "../../modules/openfaas"
  name             = var.name
  location         = var.location
  image            = var.image
  ssh_key_ids      = [for k in hcloud_ssh_key.this : k.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 10
  firewall_ids     = [module.network.public_firewall_id]
  labels           = local.labels
  server_count     = var.api_servers.count
  server_type      = var.api_servers.server_type
  domain           = var.domain
  acme_email       = var.acme_email
  aigw_version     = var.aigw_version
  stack_yml        = local.stack_yml
  function_secrets = {
    "aigw-redis-addrs"        = join(",", module.redis.endpoints)
    "aigw-redis-password"     = module.redis.password
    "aigw-mongo-uri"          = module.mongodb.uri
    "aigw-admin-token"        = random_password.admin_token.result
    "aigw-jwt-signing-key"    = var.jwt_signing_key
    "aigw-s3-endpoint"        = module.objstore.endpoint
    "aigw-s3-public-endpoint" = module.objstore.public_endpoint
    "aigw-s3-bucket"          = module.objstore.bucket
    "aigw-s3-access-key"      = module.objstore.access_key
    "aigw-s3-secret-key"      = module.objstore.secret_key
  }
}

module "gpu_pool" {
  source           = "../../modules/gpu-pool"
  for_each         = var.gpu_pools
  name             = var.name
  location         = var.location
  image            = var.image
  ssh_key_ids      = [for k in hcloud_ssh_key.this : k.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 266 + 64 * index(sort(keys(var.gpu_pools)), each.key)
  firewall_ids     = [module.network.internal_firewall_id]
  labels           = local.labels
  pool             = each.key
  slots            = each.value.slots
  worker_labels    = each.value.labels
  cloud_count      = each.value.cloud_count
  server_type      = each.value.server_type
  dedicated_hosts  = each.value.dedicated_hosts
  ssh_private_key  = var.ssh_private_key
  aigw_version     = var.aigw_version
  redis_endpoints  = module.redis.endpoints
  redis_password   = module.redis.password
  mongo_uri        = module.mongodb.uri
  objstore         = local.objstore
}

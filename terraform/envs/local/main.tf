# A small environment through the very modules production uses: 1 API server,
# a 3-master Redis Cluster, a 3-member MongoDB replica set and one worker pool.

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
  name       = "${var.name}-test"
  public_key = var.ssh_public_key
  labels     = local.labels
}

module "network" {
  source            = "../../modules/network"
  name              = var.name
  ssh_allowed_cidrs = ["127.0.0.1/32"]
  labels            = local.labels
}

module "redis" {
  source              = "../../modules/redis-cluster"
  name                = var.name
  ssh_key_ids         = [hcloud_ssh_key.this.id]
  network_id          = module.network.network_id
  subnet_ip_range     = module.network.subnet_ip_range
  private_ip_range    = module.network.ip_range
  host_offset         = 32
  firewall_ids        = [module.network.internal_firewall_id]
  labels              = local.labels
  masters             = var.redis_masters
  replicas_per_master = 0
}

module "mongodb" {
  source           = "../../modules/mongodb"
  name             = var.name
  ssh_key_ids      = [hcloud_ssh_key.this.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 20
  firewall_ids     = [module.network.internal_firewall_id]
  labels           = local.labels
}

module "objstore" {
  source           = "../../modules/objstore"
  name             = var.name
  ssh_key_ids      = [hcloud_ssh_key.this.id]
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
  ssh_key_ids      = [hcloud_ssh_key.this.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 10
  firewall_ids     = [module.network.public_firewall_id]
  labels           = local.labels
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
  name             = var.name
  ssh_key_ids      = [hcloud_ssh_key.this.id]
  network_id       = module.network.network_id
  subnet_ip_range  = module.network.subnet_ip_range
  private_ip_range = module.network.ip_range
  host_offset      = 266
  firewall_ids     = [module.network.internal_firewall_id]
  labels           = local.labels
  pool             = "gpu-test"
  slots            = 2
  worker_labels    = { gpu = "test" }
  cloud_count      = var.gpu_workers
  aigw_version     = var.aigw_version
  redis_endpoints  = module.redis.endpoints
  redis_password   = module.redis.password
  mongo_uri        = module.mongodb.uri
  objstore         = local.objstore
}

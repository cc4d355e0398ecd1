variable "hcloud_token" {
  description = "Hetzner Cloud API token (read/write) of the project to deploy into. Prefer TF_VAR_hcloud_token."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.hcloud_token) == 64
    error_message = "hcloud_token must be a 64-character Hetzner Cloud API token."
  }
}

variable "name" {
  description = "Environment name, the prefix of every resource (e.g. \"aigw-prod\")."
  type        = string
  default     = "aigw-prod"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 22 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "aigw_version" {
  description = "aigw release to run (function images ghcr.io/aigw/<function>:<version>, aigw-worker binary)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.aigw_version))
    error_message = "aigw_version must be a semantic version such as 0.3.1 (no leading v)."
  }
}

variable "location" {
  description = "Hetzner location of every server."
  type        = string
  default     = "fsn1"
  validation {
    condition     = contains(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"], var.location)
    error_message = "location must be one of fsn1, nbg1, hel1, ash, hil, sin."
  }
}

variable "network_zone" {
  description = "Network zone containing location (eu-central for fsn1/nbg1/hel1, us-east for ash, us-west for hil, ap-southeast for sin)."
  type        = string
  default     = "eu-central"
  validation {
    condition     = contains(["eu-central", "us-east", "us-west", "ap-southeast"], var.network_zone)
    error_message = "network_zone must be one of eu-central, us-east, us-west, ap-southeast."
  }
}

variable "image" {
  description = "OS image of every cloud server."
  type        = string
  default     = "debian-12"
  validation {
    condition     = contains(["debian-12", "ubuntu-22.04", "ubuntu-24.04"], var.image)
    error_message = "image must be one of debian-12, ubuntu-22.04, ubuntu-24.04."
  }
}

variable "ssh_public_keys" {
  description = "OpenSSH public keys (name => key) installed for root on every cloud server."
  type        = map(string)
  validation {
    condition     = length(var.ssh_public_keys) > 0 && alltrue([for k in values(var.ssh_public_keys) : can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", k))])
    error_message = "ssh_public_keys needs at least one OpenSSH public key (ssh-ed25519, ssh-rsa or ecdsa)."
  }
}

variable "ssh_allowed_cidrs" {
  description = "CIDRs allowed to SSH into the servers (e.g. your office or bastion /32). Empty: no public SSH."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0" && c != "::/0"])
    error_message = "ssh_allowed_cidrs entries must be CIDRs narrower than the whole internet."
  }
}

variable "vswitch_id" {
  description = "Robot vSwitch ID connecting dedicated GPU servers to the private network; null for none."
  type        = number
  default     = null
}

variable "domain" {
  description = "DNS name of the gateway; point its A record at the first API server (output api_servers). Empty: self-signed TLS on the IP."
  type        = string
  default     = ""
  validation {
    condition     = var.domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be empty or a lowercase DNS name."
  }
}

variable "acme_email" {
  description = "Let's Encrypt contact e-mail (with domain)."
  type        = string
  default     = ""
  validation {
    condition     = var.acme_email == "" || can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", var.acme_email))
    error_message = "acme_email must be empty or an e-mail address."
  }
}

variable "api_servers" {
  description = "API servers (faasd + functions + Caddy): count and server type."
  type = object({
    count       = optional(number, 1)
    server_type = optional(string, "cx32")
  })
  default = {}
  validation {
    condition     = var.api_servers.count >= 1 && var.api_servers.count <= 10
    error_message = "api_servers.count must be from 1 to 10."
  }
}

variable "redis" {
  description = "Redis Cluster: masters, replicas per master, server type, persistence."
  type = object({
    masters             = optional(number, 3)
    replicas_per_master = optional(number, 1)
    server_type         = optional(string, "cx22")
    appendonly          = optional(bool, true)
    appendfsync         = optional(string, "everysec")
  })
  default = {}
  validation {
    condition     = var.redis.masters >= 3 && var.redis.masters * (1 + var.redis.replicas_per_master) <= 200
    error_message = "redis needs at least 3 masters and at most 200 nodes in all."
  }
}

variable "mongodb" {
  description = "MongoDB replica set: members, server type, version."
  type = object({
    members     = optional(number, 3)
    server_type = optional(string, "ccx13")
    version     = optional(string, "7.0")
  })
  default = {}
  validation {
    condition     = contains([3, 5, 7], var.mongodb.members)
    error_message = "mongodb.members must be 3, 5 or 7."
  }
}

variable "gpu_pools" {
  description = <<-EOT
    GPU worker pools by name. Each: slots per worker, worker labels, cloud_count Hetzner Cloud
    servers of server_type, and/or dedicated_hosts bootstrapped over SSH (see module gpu-pool).
  EOT
  type = map(object({
    slots       = optional(number, 1)
    labels      = optional(map(string), {})
    cloud_count = optional(number, 0)
    server_type = optional(string, "ccx33")
    dedicated_hosts = optional(list(object({
      name       = string
      address    = string
      private_ip = string
      ssh_user   = optional(string, "root")
    })), [])
  }))
  default = {}
  validation {
    condition     = length(var.gpu_pools) <= 8 && alltrue([for p in values(var.gpu_pools) : p.cloud_count <= 50])
    error_message = "at most 8 pools, each with at most 50 cloud servers."
  }
}

variable "ssh_private_key" {
  description = "Private key used to bootstrap dedicated GPU hosts over SSH (needed only with dedicated_hosts)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "jwt_signing_key" {
  description = <<-EOT
    Private key the auth function signs its JWTs with (OpenFaaS secret aigw-jwt-signing-key): a
    PKCS#8 PEM Ed25519 or RSA key, the same on every API server (any router verifies any auth
    replica's token). Create it with `bin/auth genkey > signing-key.pem` and pass
    -var jwt_signing_key="$(cat signing-key.pem)" or TF_VAR_jwt_signing_key; keep the file safe.
  EOT
  type        = string
  sensitive   = true
  validation {
    condition     = strcontains(var.jwt_signing_key, "-----BEGIN PRIVATE KEY-----") && strcontains(var.jwt_signing_key, "-----END PRIVATE KEY-----")
    error_message = "jwt_signing_key must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): create one with `bin/auth genkey > signing-key.pem`."
  }
}

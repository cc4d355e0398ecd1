variable "hcloud_token" {
  description = "Token of the local API (64 characters, as the provider demands)."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.hcloud_token) == 64
    error_message = "hcloud_token must be 64 characters."
  }
}

variable "hcloud_endpoint" {
  description = "URL of the local Hetzner-Cloud-compatible API, e.g. http://127.0.0.1:39123/v1. Loopback only."
  type        = string
  validation {
    condition     = can(regex("^http://(127\\.[0-9]+\\.[0-9]+\\.[0-9]+|localhost|\\[::1\\]):[0-9]{1,5}/v1$", var.hcloud_endpoint))
    error_message = "hcloud_endpoint must be http://<loopback address>:<port>/v1: envs/local never talks to a real cloud."
  }
}

variable "name" {
  description = "Environment name, the prefix of every resource."
  type        = string
  default     = "aigw-local"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 22 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "aigw_version" {
  description = "aigw version written into the servers' set-up."
  type        = string
  default     = "0.0.0"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.aigw_version))
    error_message = "aigw_version must be a semantic version such as 0.3.1."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key registered as the environment's SSH key (a throwaway test key by default)."
  type        = string
  default     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDfYgG5qXTXAMlHXnsxKQEhHdVxQHu4axjVJ9j4SvKxC aigw-test"
  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key."
  }
}

variable "redis_masters" {
  description = "Redis Cluster masters (no replicas locally)."
  type        = number
  default     = 3
  validation {
    condition     = var.redis_masters >= 3 && var.redis_masters <= 6
    error_message = "redis_masters must be from 3 to 6."
  }
}

variable "gpu_workers" {
  description = "Cloud workers in the local pool \"gpu-test\"."
  type        = number
  default     = 1
  validation {
    condition     = var.gpu_workers >= 0 && var.gpu_workers <= 4
    error_message = "gpu_workers must be from 0 to 4."
  }
}

variable "jwt_signing_key" {
  description = <<-EOT
    Private key the auth function signs its JWTs with (OpenFaaS secret aigw-jwt-signing-key): a
    PKCS#8 PEM Ed25519 or RSA key, made with `bin/auth genkey > signing-key.pem` and passed as
    -var jwt_signing_key="$(cat signing-key.pem)" or TF_VAR_jwt_signing_key. The default is a
    throwaway TEST-ONLY Ed25519 key (it is public: never use it outside this local environment).
  EOT
  type        = string
  sensitive   = true
  default     = <<-EOT
    -----BEGIN PRIVATE KEY-----
    MC4CAQAwBQYDK2VwBCIEIKPjp3WwsIKEqGbeODdk9sOgMX8UJIdoTpC79twbyIsA
    -----END PRIVATE KEY-----
  EOT
  validation {
    condition     = strcontains(var.jwt_signing_key, "-----BEGIN PRIVATE KEY-----") && strcontains(var.jwt_signing_key, "-----END PRIVATE KEY-----")
    error_message = "jwt_signing_key must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): create one with `bin/auth genkey > signing-key.pem`."
  }
}

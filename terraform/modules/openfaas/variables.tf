variable "server_count" {
  description = "Number of API servers, each running faasd with every function behind Caddy."
  type        = number
  default     = 1
  validation {
    condition     = var.server_count >= 1 && var.server_count <= 10 && var.server_count == floor(var.server_count)
    error_message = "server_count must be a whole number from 1 to 10."
  }
}

variable "server_type" {
  description = "Hetzner server type of the API servers (x86: faasd images are amd64)."
  type        = string
  default     = "cx32"
  validation {
    condition     = can(regex("^(cx|cpx|ccx)[0-9]+$", var.server_type))
    error_message = "server_type must be an x86 Hetzner Cloud type (cx.., cpx.. or ccx..)."
  }
}

variable "domain" {
  description = "DNS name of the gateway (an A record to the first API server). Caddy gets a Let's Encrypt certificate for it. Empty: Caddy serves its own internal CA certificate on the IP address."
  type        = string
  default     = ""
  validation {
    condition     = var.domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be empty or a lowercase DNS name such as api.example.com."
  }
}

variable "acme_email" {
  description = "Contact e-mail for Let's Encrypt (used when domain is set)."
  type        = string
  default     = ""
  validation {
    condition     = var.acme_email == "" || can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", var.acme_email))
    error_message = "acme_email must be empty or an e-mail address."
  }
}

variable "faasd_version" {
  description = "faasd release tag installed by cloud-init."
  type        = string
  default     = "0.19.6"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.faasd_version))
    error_message = "faasd_version must look like 0.19.6."
  }
}

variable "faas_cli_version" {
  description = "faas-cli release tag installed by cloud-init."
  type        = string
  default     = "0.17.4"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.faas_cli_version))
    error_message = "faas_cli_version must look like 0.17.4."
  }
}

variable "stack_yml" {
  description = "Contents of stack.yml, deployed with `faas-cli deploy -f stack.yml` once faasd is up. Empty: deploy nothing."
  type        = string
  default     = ""
}

variable "aigw_version" {
  description = "aigw version whose function images are deployed (exported as AIGW_VERSION for stack.yml's image tags)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.aigw_version))
    error_message = "aigw_version must be a semantic version such as 0.3.1 (no leading v)."
  }
}

variable "function_secrets" {
  description = "OpenFaaS secrets created before the deploy (name => value), e.g. Redis and MongoDB credentials."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in keys(var.function_secrets) : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", k))])
    error_message = "function_secrets names must be lowercase letters, digits and dashes."
  }
}

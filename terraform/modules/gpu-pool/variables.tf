variable "pool" {
  description = "Name of the worker pool (algorithms name the pool they run in), e.g. \"gpu-a100\"."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", var.pool))
    error_message = "pool must be 2 to 32 lowercase letters, digits or dashes."
  }
}

variable "slots" {
  description = "Job slots per worker (usually the number of GPUs per node)."
  type        = number
  default     = 1
  validation {
    condition     = var.slots >= 1 && var.slots <= 64 && var.slots == floor(var.slots)
    error_message = "slots must be a whole number from 1 to 64."
  }
}

variable "worker_labels" {
  description = "Labels the workers advertise (e.g. gpu = \"a100\", vram_gb = \"80\")."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.worker_labels : can(regex("^[a-z0-9_.-]+$", k)) && !can(regex("[,=\\s]", v))])
    error_message = "worker_labels keys must be lowercase [a-z0-9_.-]; values must not contain commas, '=' or spaces."
  }
}

variable "cloud_count" {
  description = "Number of Hetzner Cloud servers in the pool (0 when the pool is made only of dedicated servers)."
  type        = number
  default     = 0
  validation {
    condition     = var.cloud_count >= 0 && var.cloud_count <= 50 && var.cloud_count == floor(var.cloud_count)
    error_message = "cloud_count must be a whole number from 0 to 50."
  }
}

variable "server_type" {
  description = "Hetzner Cloud server type of the cloud workers."
  type        = string
  default     = "ccx33"
  validation {
    condition     = can(regex("^(cx|cpx|ccx|cax)[0-9]+$", var.server_type))
    error_message = "server_type must be a Hetzner Cloud server type such as ccx33."
  }
}

variable "dedicated_hosts" {
  description = <<-EOT
    Existing dedicated GPU servers to bootstrap over SSH: name, address (reachable by SSH from
    where Terraform runs), private_ip (its address on the private network / vSwitch) and ssh_user.
  EOT
  type = list(object({
    name       = string
    address    = string
    private_ip = string
    ssh_user   = optional(string, "root")
  }))
  default = []
  validation {
    condition     = alltrue([for h in var.dedicated_hosts : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", h.name)) && can(cidrhost("${h.private_ip}/32", 0)) && length(h.address) > 0])
    error_message = "each dedicated host needs a lowercase name, a non-empty address and an IPv4 private_ip."
  }
  validation {
    condition     = length(distinct([for h in var.dedicated_hosts : h.name])) == length(var.dedicated_hosts)
    error_message = "dedicated host names must be unique."
  }
}

variable "ssh_private_key" {
  description = "Private key Terraform uses to reach dedicated_hosts (PEM/OpenSSH text). Required when dedicated_hosts is not empty."
  type        = string
  default     = ""
  sensitive   = true
}

variable "install_nvidia_driver" {
  description = "Install the NVIDIA driver on nodes that have no working nvidia-smi."
  type        = bool
  default     = true
}

variable "aigw_version" {
  description = "aigw release whose aigw-worker binary is installed."
  type        = string
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.aigw_version))
    error_message = "aigw_version must be a semantic version such as 0.3.1 (no leading v)."
  }
}

variable "worker_url" {
  description = "Download URL of the aigw-worker binary; empty: the GitHub release asset of aigw_version."
  type        = string
  default     = ""
  validation {
    condition     = var.worker_url == "" || can(regex("^https://", var.worker_url))
    error_message = "worker_url must be empty or an https:// URL."
  }
}

variable "algorithms_url" {
  description = "Download URL of the reference algorithms (a tar.gz holding algorithms/ and bin/, installed in /opt/aigw); empty: the GitHub release asset of aigw_version."
  type        = string
  default     = ""
  validation {
    condition     = var.algorithms_url == "" || can(regex("^https://", var.algorithms_url))
    error_message = "algorithms_url must be empty or an https:// URL."
  }
}

variable "install_python_torch" {
  description = "Install Debian's python3 with PyTorch (python3-torch, a CPU build) and OpenBLAS, which the matmul reference algorithm runs with (as scripts/python-torch.sh does). Install a CUDA build of torch for /usr/bin/python3 yourself to use the GPUs from Python."
  type        = bool
  default     = true
}

variable "redis_endpoints" {
  description = "Private host:port of the Redis Cluster nodes."
  type        = list(string)
  validation {
    condition     = length(var.redis_endpoints) > 0
    error_message = "redis_endpoints must not be empty."
  }
}

variable "redis_password" {
  description = "Redis password."
  type        = string
  sensitive   = true
}

variable "objstore" {
  description = "The S3-compatible object store the workers put artifacts in and fetch inputs from (module objstore's outputs); null: artifacts go to MongoDB GridFS."
  type = object({
    endpoint        = string
    public_endpoint = string
    bucket          = string
    region          = string
    access_key      = string
    secret_key      = string
  })
  default   = null
  sensitive = true
}

variable "mongo_uri" {
  description = "MongoDB connection string of the aigw user."
  type        = string
  sensitive   = true
}

variable "masters" {
  description = "Number of Redis Cluster masters (hash-slot shards)."
  type        = number
  default     = 3
  validation {
    condition     = var.masters >= 3 && var.masters <= 32 && var.masters == floor(var.masters)
    error_message = "masters must be a whole number from 3 to 32 (Redis Cluster needs at least 3 masters)."
  }
}

variable "replicas_per_master" {
  description = "Replicas per master (0 for none; 1 or more for failover)."
  type        = number
  default     = 1
  validation {
    condition     = var.replicas_per_master >= 0 && var.replicas_per_master <= 5 && var.replicas_per_master == floor(var.replicas_per_master)
    error_message = "replicas_per_master must be a whole number from 0 to 5."
  }
}

variable "server_type" {
  description = "Hetzner server type of each Redis node."
  type        = string
  default     = "cx22"
  validation {
    condition     = can(regex("^(cx|cpx|ccx|cax)[0-9]+$", var.server_type))
    error_message = "server_type must be a Hetzner Cloud server type such as cx22."
  }
}

variable "port" {
  description = "Redis port (the cluster bus uses port + 10000)."
  type        = number
  default     = 6379
  validation {
    condition     = var.port >= 1024 && var.port <= 55535
    error_message = "port must be between 1024 and 55535 (the bus port is port + 10000)."
  }
}

variable "appendonly" {
  description = "Persistence: append-only file on (recommended for queues) or off."
  type        = bool
  default     = true
}

variable "appendfsync" {
  description = "Persistence: AOF fsync policy (always, everysec, no)."
  type        = string
  default     = "everysec"
  validation {
    condition     = contains(["always", "everysec", "no"], var.appendfsync)
    error_message = "appendfsync must be always, everysec or no."
  }
}

variable "save" {
  description = "Persistence: RDB snapshot rules (Redis `save` syntax, e.g. \"3600 1 300 100\"); empty disables snapshots."
  type        = string
  default     = "3600 1 300 100 60 10000"
  validation {
    condition     = can(regex("^([0-9]+ [0-9]+( [0-9]+ [0-9]+)*)?$", var.save))
    error_message = "save must be pairs of numbers (seconds changes ...) or empty."
  }
}

variable "maxmemory_percent" {
  description = "maxmemory as a percentage of the server's RAM (eviction is off: queues must never lose entries)."
  type        = number
  default     = 70
  validation {
    condition     = var.maxmemory_percent >= 10 && var.maxmemory_percent <= 90
    error_message = "maxmemory_percent must be between 10 and 90."
  }
}

variable "members" {
  description = "Members of the replica set (an odd number; 3 is the usual production size)."
  type        = number
  default     = 3
  validation {
    condition     = contains([3, 5, 7], var.members)
    error_message = "members must be 3, 5 or 7 (an odd-sized replica set keeps a majority)."
  }
}

variable "server_type" {
  description = "Hetzner server type of each MongoDB member (dedicated vCPU recommended)."
  type        = string
  default     = "ccx13"
  validation {
    condition     = can(regex("^(cx|cpx|ccx)[0-9]+$", var.server_type))
    error_message = "server_type must be an x86 Hetzner Cloud type (MongoDB's Debian packages are amd64)."
  }
}

variable "mongodb_version" {
  description = "MongoDB major.minor release series installed from repo.mongodb.org."
  type        = string
  default     = "7.0"
  validation {
    condition     = contains(["6.0", "7.0", "8.0"], var.mongodb_version)
    error_message = "mongodb_version must be 6.0, 7.0 or 8.0."
  }
}

variable "replica_set_name" {
  description = "Name of the replica set."
  type        = string
  default     = "rs0"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,32}$", var.replica_set_name))
    error_message = "replica_set_name must be 1 to 32 letters, digits, dashes or underscores."
  }
}

variable "database" {
  description = "Database of the aigw application user."
  type        = string
  default     = "aigw"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,38}$", var.database))
    error_message = "database must be 1 to 38 letters, digits, dashes or underscores."
  }
}

variable "port" {
  description = "mongod port."
  type        = number
  default     = 27017
  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

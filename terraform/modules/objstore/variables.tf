variable "server_type" {
  description = "Hetzner server type of the object store; its local disk holds the objects (cx32: 80 GB, ccx23: 240 GB)."
  type        = string
  default     = "cx32"
  validation {
    condition     = can(regex("^(cx|cpx|ccx|cax)[0-9]+$", var.server_type))
    error_message = "server_type must be a Hetzner Cloud server type such as cx32."
  }
}

variable "port" {
  description = "Port of the S3 API on the private address (aigw's functions and workers)."
  type        = number
  default     = 7070
  validation {
    condition     = var.port >= 1024 && var.port <= 65535 && var.port != 8080
    error_message = "port must be between 1024 and 65535 (not 8080)."
  }
}

variable "bucket" {
  description = "The bucket aigw uses (AIGW_S3_BUCKET); created at boot."
  type        = string
  default     = "aigw"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "bucket must be 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit."
  }
}

variable "region" {
  description = "Region requests are signed for (AIGW_S3_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "domain" {
  description = "DNS name clients download and upload through (presigned URLs, HTTPS by Let's Encrypt); empty: the server's IP with Caddy's internal CA."
  type        = string
  default     = ""
}

variable "acme_email" {
  description = "Contact for Let's Encrypt (with domain)."
  type        = string
  default     = ""
}

variable "aigw_version" {
  description = "aigw release whose versitygw binary is installed (asset versitygw_linux_amd64)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.aigw_version))
    error_message = "aigw_version must be a semantic version such as 1.2.3."
  }
}

variable "versitygw_url" {
  description = "Where to download the versitygw binary; empty: the aigw release's asset."
  type        = string
  default     = ""
}

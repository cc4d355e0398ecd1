variable "name" {
  description = "Prefix for every resource name (lowercase letters, digits and dashes), e.g. \"aigw-prod\"."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 32 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "ip_range" {
  description = "Private IPv4 range of the whole network (RFC 1918), e.g. 10.40.0.0/16."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.ip_range, 0)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.ip_range)) && tonumber(split("/", var.ip_range)[1]) <= 24
    error_message = "ip_range must be an RFC 1918 IPv4 CIDR of size /24 or larger."
  }
}

variable "subnet_ip_range" {
  description = "Cloud subnet inside ip_range that every server's private address comes from."
  type        = string
  default     = "10.40.0.0/20"
  validation {
    condition     = can(cidrhost(var.subnet_ip_range, 0)) && tonumber(split("/", var.subnet_ip_range)[1]) <= 28
    error_message = "subnet_ip_range must be an IPv4 CIDR of size /28 or larger."
  }
}

variable "network_zone" {
  description = "Hetzner network zone of the subnet; it must contain the servers' location (eu-central for fsn1/nbg1/hel1)."
  type        = string
  default     = "eu-central"
  validation {
    condition     = contains(["eu-central", "us-east", "us-west", "ap-southeast"], var.network_zone)
    error_message = "network_zone must be one of eu-central, us-east, us-west, ap-southeast."
  }
}

variable "vswitch_id" {
  description = "Optional Robot vSwitch ID: adds a vswitch subnet so that dedicated (e.g. GPU) servers reach the private network. null for none."
  type        = number
  default     = null
  validation {
    condition     = var.vswitch_id == null ? true : var.vswitch_id > 0
    error_message = "vswitch_id must be a positive number or null."
  }
}

variable "vswitch_ip_range" {
  description = "Subnet inside ip_range for the vSwitch (used only when vswitch_id is set)."
  type        = string
  default     = "10.40.16.0/24"
  validation {
    condition     = can(cidrhost(var.vswitch_ip_range, 0))
    error_message = "vswitch_ip_range must be an IPv4 CIDR."
  }
}

variable "ssh_allowed_cidrs" {
  description = "CIDRs allowed to reach SSH (port 22) on the public interfaces. Empty: no public SSH at all."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "every ssh_allowed_cidrs entry must be a CIDR, e.g. 203.0.113.7/32."
  }
  validation {
    condition     = !contains(var.ssh_allowed_cidrs, "0.0.0.0/0") && !contains(var.ssh_allowed_cidrs, "::/0")
    error_message = "ssh_allowed_cidrs must not open SSH to the whole internet."
  }
}

variable "labels" {
  description = "Labels put on every resource."
  type        = map(string)
  default     = {}
}

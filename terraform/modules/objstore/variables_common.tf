# ---- placement and network (the same in every server module) ---------------

variable "name" {
  description = "Prefix for server names, e.g. \"aigw-prod\"."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 32 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "location" {
  description = "Hetzner location of the servers (fsn1, nbg1, hel1, ash, hil, sin); must be in the network's zone."
  type        = string
  default     = "fsn1"
  validation {
    condition     = contains(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"], var.location)
    error_message = "location must be one of fsn1, nbg1, hel1, ash, hil, sin."
  }
}

variable "image" {
  description = "OS image of the servers (Debian 12 or Ubuntu 22.04/24.04)."
  type        = string
  default     = "debian-12"
  validation {
    condition     = contains(["debian-12", "ubuntu-22.04", "ubuntu-24.04"], var.image)
    error_message = "image must be one of debian-12, ubuntu-22.04, ubuntu-24.04."
  }
}

variable "ssh_key_ids" {
  description = "IDs of hcloud_ssh_key resources installed for root."
  type        = list(string)
  default     = []
}

variable "network_id" {
  description = "ID of the private network (module network's network_id)."
  type        = string
}

variable "subnet_ip_range" {
  description = "The cloud subnet the private addresses come from (module network's subnet_ip_range)."
  type        = string
  validation {
    condition     = can(cidrhost(var.subnet_ip_range, 0))
    error_message = "subnet_ip_range must be an IPv4 CIDR."
  }
}

variable "private_ip_range" {
  description = "The whole private network range; the host firewall admits service ports from it only."
  type        = string
  validation {
    condition     = can(cidrhost(var.private_ip_range, 0))
    error_message = "private_ip_range must be an IPv4 CIDR."
  }
}

variable "host_offset" {
  description = "Host number in subnet_ip_range of the first server; server i gets cidrhost(subnet_ip_range, host_offset + i). Keep the modules' ranges apart."
  type        = number
  validation {
    condition     = var.host_offset >= 2 && var.host_offset == floor(var.host_offset)
    error_message = "host_offset must be a whole number >= 2 (.1 is the network gateway)."
  }
}

variable "firewall_ids" {
  description = "Hetzner firewalls applied to the servers' public interfaces."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Labels put on every server."
  type        = map(string)
  default     = {}
}

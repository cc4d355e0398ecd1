output "inventory" {
  description = "Every worker of the pool: name, kind (cloud or dedicated), addresses, pool, slots, labels."
  value = concat(
    [for s in hcloud_server.worker : {
      name       = s.name
      kind       = "cloud"
      address    = s.ipv4_address
      private_ip = tolist(s.network)[0].ip
      pool       = var.pool
      slots      = var.slots
      labels     = var.worker_labels
    }],
    [for h in var.dedicated_hosts : {
      name       = h.name
      kind       = "dedicated"
      address    = h.address
      private_ip = h.private_ip
      pool       = var.pool
      slots      = var.slots
      labels     = var.worker_labels
    }],
  )
}

output "bootstrap_script" {
  description = "The rendered bootstrap script (for tests and manual runs)."
  value       = local.bootstrap
}

output "cloud_init" {
  description = "Rendered cloud-init of each cloud worker (for validation)."
  value       = local.cloud_init
  sensitive   = true
}

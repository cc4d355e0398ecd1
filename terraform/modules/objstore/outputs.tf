output "endpoint" {
  description = "The S3 endpoint on the private network (AIGW_S3_ENDPOINT of functions and workers)."
  value       = "http://${local.ip}:${var.port}"
}

output "public_endpoint" {
  description = "The HTTPS endpoint presigned URLs are made for (AIGW_S3_PUBLIC_ENDPOINT)."
  value       = var.domain != "" ? "https://${var.domain}" : "https://${hcloud_server.this.ipv4_address}"
}

output "bucket" {
  description = "The bucket (AIGW_S3_BUCKET)."
  value       = var.bucket
}

output "region" {
  description = "The region requests are signed for (AIGW_S3_REGION)."
  value       = var.region
}

output "access_key" {
  description = "The store's root access key (AIGW_S3_ACCESS_KEY, secret aigw-s3-access-key)."
  value       = random_password.access_key.result
  sensitive   = true
}

output "secret_key" {
  description = "The store's root secret key (AIGW_S3_SECRET_KEY, secret aigw-s3-secret-key)."
  value       = random_password.secret_key.result
  sensitive   = true
}

output "cloud_init" {
  description = "Rendered cloud-init of the server (for validation)."
  value       = local.cloud_init
  sensitive   = true
}

mock_provider "hcloud" {
  mock_resource "hcloud_server" {
    defaults = { ipv4_address = "203.0.113.9" }
  }
}
mock_provider "random" {}

variables {
  name             = "aigw-test"
  network_id       = "1"
  subnet_ip_range  = "10.40.0.0/20"
  private_ip_range = "10.40.0.0/16"
  host_offset      = 16
  firewall_ids     = ["7"]
  aigw_version     = "1.2.3"
}

run "one_server_private_api_public_https" {
  assert {
    condition     = tolist(hcloud_server.this.network)[0].ip == "10.40.0.16"
    error_message = "the server takes its private address from host_offset"
  }
  assert {
    condition     = output.endpoint == "http://10.40.0.16:7070"
    error_message = "aigw reaches the S3 API on the private address"
  }
  assert {
    condition     = output.public_endpoint == "https://203.0.113.9"
    error_message = "without a domain, presigned URLs use the server's IP over HTTPS"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init).write_files[1].content, "ip saddr 10.40.0.0/16 tcp dport 7070 accept")
    error_message = "the host firewall admits the S3 API only from the private network"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init).write_files[3].content, "--port 10.40.0.16:7070")
    error_message = "versitygw binds its private address only"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init).write_files[4].content, "releases/download/v1.2.3/versitygw_linux_amd64")
    error_message = "the binary comes from the aigw release"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init).write_files[4].content, "/var/lib/aigw-objstore/aigw")
    error_message = "the bucket is created at boot"
  }
}

run "a_domain_gets_lets_encrypt" {
  variables {
    domain     = "files.example.com"
    acme_email = "ops@example.com"
  }
  assert {
    condition     = output.public_endpoint == "https://files.example.com"
    error_message = "presigned URLs use the domain"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init).write_files[2].content, "files.example.com {")
    error_message = "Caddy serves the domain"
  }
}

run "bad_bucket_refused" {
  command = plan
  variables {
    bucket = "Bad_Bucket"
  }
  expect_failures = [var.bucket]
}

mock_provider "hcloud" {
  mock_resource "hcloud_network" {
    defaults = { id = "101" }
  }
  mock_resource "hcloud_firewall" {
    defaults = { id = "102" }
  }
  mock_resource "hcloud_placement_group" {
    defaults = { id = "103" }
  }
  mock_resource "hcloud_ssh_key" {
    defaults = { id = "104" }
  }
  mock_resource "hcloud_server" {
    defaults = {
      id           = "105"
      ipv4_address = "203.0.113.20"
    }
  }
}
mock_provider "random" {}

variables {
  name             = "aigw-test"
  network_id       = "1"
  subnet_ip_range  = "10.40.0.0/20"
  private_ip_range = "10.40.0.0/16"
  host_offset      = 266
  pool             = "gpu-a100"
  slots            = 4
  worker_labels    = { gpu = "a100", vram_gb = "80" }
  aigw_version     = "1.2.3"
  redis_endpoints  = ["10.40.0.32:6379", "10.40.0.33:6379"]
  redis_password   = "redispw"
  mongo_uri        = "mongodb://aigw:pw@10.40.0.20:27017/aigw"
}

run "cloud_workers" {
  variables {
    cloud_count = 2
  }
  assert {
    condition     = length(hcloud_server.worker) == 2 && length(terraform_data.dedicated) == 0
    error_message = "cloud_count cloud servers and no SSH bootstrap"
  }
  assert {
    condition     = [for w in output.inventory : w.private_ip] == ["10.40.1.10", "10.40.1.11"]
    error_message = "workers take private addresses from host_offset"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[0].content, "AIGW_POOL=gpu-a100\nAIGW_SLOTS=4\nAIGW_LABELS=gpu=a100,vram_gb=80\n")
    error_message = "the worker environment carries pool, slots and labels"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "releases/download/v1.2.3/aigw-worker_linux_amd64") && strcontains(output.bootstrap_script, "nvidia-driver")
    error_message = "the bootstrap installs the versioned worker and the NVIDIA driver"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "curl -fsSL \"https://github.com/aigw/aigw/releases/download/v1.2.3/aigw-algorithms_linux_amd64.tar.gz\"") && strcontains(output.bootstrap_script, "mv \"$tmp/new/algorithms\" \"$tmp/new/bin\" /opt/aigw/")
    error_message = "the bootstrap installs the reference algorithms of the same release in /opt/aigw"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "apt-get install -y --no-install-recommends python3 python3-torch libopenblas0-pthread")
    error_message = "the bootstrap installs python3 with torch (Debian python3-torch) and OpenBLAS"
  }
  assert {
    condition     = can(regex("(?s)mv .* /opt/aigw/.*exec /usr/local/bin/aigw-worker register /opt/aigw/algorithms\n.*systemctl restart aigw-worker", output.bootstrap_script))
    error_message = "the bootstrap registers the installed algorithms in MongoDB (aigw-worker register) before it starts the worker"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[0].content, "AIGW_ALGORITHMS_DIR=/opt/aigw/algorithms\nAIGW_BIN_DIR=/opt/aigw/bin\nAIGW_INTERPRETERS=/usr/bin/python3\n")
    error_message = "the worker runs the installed algorithms, with python3 allowed"
  }
  assert {
    condition     = yamldecode(output.cloud_init[0]).runcmd == [["/usr/local/sbin/aigw-worker-bootstrap"]] && [for f in yamldecode(output.cloud_init[0]).write_files : f.content if f.path == "/usr/local/sbin/aigw-worker-bootstrap"] == [output.bootstrap_script]
    error_message = "cloud-init writes the bootstrap script and runs it"
  }
}

run "own_artifacts_no_torch" {
  command = plan
  variables {
    cloud_count          = 1
    algorithms_url       = "https://example.com/aigw/algorithms.tar.gz"
    install_python_torch = false
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "curl -fsSL \"https://example.com/aigw/algorithms.tar.gz\"") && !strcontains(output.bootstrap_script, "python3-torch")
    error_message = "algorithms_url replaces the release asset; install_python_torch = false installs no torch"
  }
}

run "rejects_plain_http_algorithms" {
  command = plan
  variables {
    algorithms_url = "http://example.com/algorithms.tar.gz"
  }
  expect_failures = [var.algorithms_url]
}

run "dedicated_hosts_over_ssh" {
  command = plan
  variables {
    ssh_private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n"
    dedicated_hosts = [
      { name = "gex-1", address = "198.51.100.10", private_ip = "10.40.16.10" },
      { name = "gex-2", address = "198.51.100.11", private_ip = "10.40.16.11", ssh_user = "ubuntu" },
    ]
  }
  assert {
    condition     = length(hcloud_server.worker) == 0 && length(terraform_data.dedicated) == 2
    error_message = "one SSH bootstrap per dedicated host, no cloud servers"
  }
  assert {
    condition     = [for w in output.inventory : "${w.name}/${w.kind}/${w.private_ip}"] == ["gex-1/dedicated/10.40.16.10", "gex-2/dedicated/10.40.16.11"]
    error_message = "the inventory lists the dedicated hosts"
  }
}

run "dedicated_hosts_need_a_key" {
  command = plan
  variables {
    dedicated_hosts = [{ name = "gex-1", address = "198.51.100.10", private_ip = "10.40.16.10" }]
  }
  expect_failures = [terraform_data.dedicated]
}

run "rejects_bad_labels" {
  command = plan
  variables {
    worker_labels = { gpu = "a100,h100" }
  }
  expect_failures = [var.worker_labels]
}

run "rejects_duplicate_hosts" {
  command = plan
  variables {
    dedicated_hosts = [
      { name = "gex-1", address = "198.51.100.10", private_ip = "10.40.16.10" },
      { name = "gex-1", address = "198.51.100.11", private_ip = "10.40.16.11" },
    ]
  }
  expect_failures = [var.dedicated_hosts]
}

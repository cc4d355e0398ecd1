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
}
mock_provider "random" {}

variables {
  name             = "aigw-test"
  network_id       = "1"
  subnet_ip_range  = "10.40.0.0/20"
  private_ip_range = "10.40.0.0/16"
  host_offset      = 32
  firewall_ids     = ["7"]
}

run "three_masters_one_replica_each" {
  variables {
    masters             = 3
    replicas_per_master = 1
  }

  assert {
    condition     = length(hcloud_server.node) == 6
    error_message = "3 masters x (1 + 1 replica) must give 6 servers"
  }
  assert {
    condition     = [for s in hcloud_server.node : tolist(s.network)[0].ip] == ["10.40.0.32", "10.40.0.33", "10.40.0.34", "10.40.0.35", "10.40.0.36", "10.40.0.37"]
    error_message = "nodes take consecutive private addresses from host_offset"
  }
  assert {
    condition     = alltrue([for s in hcloud_server.node : s.firewall_ids == toset([7])])
    error_message = "every node gets the internal firewall"
  }
  assert {
    condition     = output.endpoints[0] == "10.40.0.32:6379" && output.node_count == 6
    error_message = "endpoints are private host:port"
  }
}

run "cloud_init_binds_private_and_creates_cluster_once" {
  variables {
    masters             = 3
    replicas_per_master = 1
  }

  assert {
    condition     = alltrue([for d in output.cloud_init : startswith(d, "#cloud-config\n")])
    error_message = "every document is a cloud-config"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[1]).write_files[2].content, "bind 10.40.0.33 127.0.0.1")
    error_message = "node 2 must bind its private address only"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[3].content, "--cluster-replicas 1")
    error_message = "the first node creates the cluster with the replicas"
  }
  assert {
    condition     = length([for d in output.cloud_init : d if strcontains(yamldecode(d).write_files[3].content, "--cluster create")]) == 1
    error_message = "exactly one node creates the cluster"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[1].content, "ip saddr 10.40.0.0/16 tcp dport { 6379, 16379 } accept")
    error_message = "the host firewall admits Redis only from the private network"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[2].content, "appendonly yes")
    error_message = "AOF persistence is on by default"
  }
}

run "persistence_off" {
  command = plan
  variables {
    appendonly = false
    save       = ""
  }
  assert {
    condition     = length(hcloud_server.node) == 6
    error_message = "defaults are 3 masters with 1 replica"
  }
}

run "rejects_two_masters" {
  command = plan
  variables {
    masters = 2
  }
  expect_failures = [var.masters]
}

run "rejects_bad_fsync" {
  command = plan
  variables {
    appendfsync = "sometimes"
  }
  expect_failures = [var.appendfsync]
}

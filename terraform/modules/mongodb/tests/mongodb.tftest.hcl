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
mock_provider "random" {
  mock_resource "random_bytes" {
    defaults = {
      base64 = "a2V5ZmlsZS1rZXlmaWxlLWtleWZpbGUta2V5ZmlsZS1rZXlmaWxl"
    }
  }
}

variables {
  name             = "aigw-test"
  network_id       = "1"
  subnet_ip_range  = "10.40.0.0/20"
  private_ip_range = "10.40.0.0/16"
  host_offset      = 20
}

run "three_member_replica_set" {
  assert {
    condition     = length(hcloud_server.member) == 3
    error_message = "a replica set of 3 servers"
  }
  assert {
    condition     = output.endpoint == "mongodb://10.40.0.20:27017,10.40.0.21:27017,10.40.0.22:27017/aigw?replicaSet=rs0"
    error_message = "endpoint lists the private members"
  }
  assert {
    condition     = alltrue([for d in output.cloud_init : strcontains(d, "a2V5ZmlsZS1rZXlmaWxl")])
    error_message = "every member gets the same keyfile"
  }
  assert {
    condition     = length([for d in output.cloud_init : d if strcontains(join("", [for f in yamldecode(d).write_files : f.content]), "rs.initiate")]) == 1
    error_message = "only the first member initiates the replica set"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[2]).write_files[2].content, "bindIp: 127.0.0.1,10.40.0.22")
    error_message = "mongod binds the private address only"
  }
  assert {
    condition     = strcontains(yamldecode(output.cloud_init[0]).write_files[1].content, "ip saddr 10.40.0.0/16 tcp dport { 27017 } accept")
    error_message = "the host firewall admits mongod only from the private network"
  }
}

run "rejects_even_members" {
  command = plan
  variables {
    members = 4
  }
  expect_failures = [var.members]
}

run "rejects_bad_name" {
  command = plan
  variables {
    name = "Bad_Name"
  }
  expect_failures = [var.name]
}

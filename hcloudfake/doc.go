// Package hcloudfake is a small in-memory fake of the Hetzner Cloud API, just
// big enough for the hcloud Terraform provider (hetznercloud/hcloud 1.68) to
// create, read, update and delete what aigw's Terraform configurations use:
// networks and subnets, firewalls, SSH keys, placement groups and servers
// (attached to networks, firewalls and placement groups), plus the read-only
// catalog of server types, images and locations and the /actions endpoints the
// provider polls.
//
// It exists so that `terraform apply` of terraform/envs/local can run for real
// in tests and CI, with no cloud account and no network access. It keeps state
// in memory only, serves only loopback clients, and requires the bearer token
// it was started with.
//
// Actions are created "running" and reported "success" the first time they are
// read, so the provider's action polling is exercised.
//
// One endpoint is the fake's own: GET /v1/servers/{id}/user_data answers
// {"user_data": …}, the cloud-init the server was created with (Hetzner's API
// never returns it), so tests can check what a server would boot with.
package hcloudfake

package hcloudfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testToken = "0123456789012345678901234567890123456789012345678901234567890123"

type client struct {
	t   *testing.T
	url string
}

func setup(t *testing.T) (*Fake, *client) {
	t.Helper()
	f := New(testToken, nil)
	srv := httptest.NewServer(f) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return f, &client{t: t, url: srv.URL + "/v1"}
}

// do sends a request and decodes the JSON answer into a map.
func (c *client) do(method, path string, body any, wantStatus int) map[string]any {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, wantStatus, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return out
}

func id(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	obj, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("no %q in %v", key, m)
	}
	return int64(obj["id"].(float64))
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestRejectsWrongToken(t *testing.T) {
	_, c := setup(t)
	req, _ := http.NewRequest("GET", c.url+"/servers", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

func TestRejectsNonLoopbackClients(t *testing.T) {
	f := New(testToken, nil)
	req := httptest.NewRequest("GET", "/v1/servers", nil) // RemoteAddr 192.0.2.1
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
}

func TestCatalogLookups(t *testing.T) {
	_, c := setup(t)
	st := c.do("GET", "/server_types?name=cx22", nil, 200)["server_types"].([]any)
	if len(st) != 1 || st[0].(map[string]any)["architecture"] != "x86" {
		t.Fatalf("server_types?name=cx22 = %v", st)
	}
	im := c.do("GET", "/images?name=debian-12&architecture=arm", nil, 200)["images"].([]any)
	if len(im) != 1 || im[0].(map[string]any)["architecture"] != "arm" {
		t.Fatalf("images = %v", im)
	}
	if got := c.do("GET", "/server_types?name=nope", nil, 200)["server_types"].([]any); len(got) != 0 {
		t.Fatalf("unknown type listed: %v", got)
	}
	if e := c.do("GET", "/servers/999", nil, 404); errCode(e) != "not_found" {
		t.Fatalf("error = %v", e)
	}
	if e := c.do("GET", "/volumes", nil, 404); errCode(e) != "not_found" {
		t.Fatalf("unsupported endpoint: %v", e)
	}
}

// TestServerLifecycle walks the calls the hcloud provider makes for one
// server in a network, behind a firewall, in a placement group.
func TestServerLifecycle(t *testing.T) {
	f, c := setup(t)

	netID := id(t, c.do("POST", "/networks", map[string]any{"name": "n", "ip_range": "10.40.0.0/16"}, 201), "network")
	act := c.do("POST", fmt.Sprintf("/networks/%d/actions/add_subnet", netID),
		map[string]any{"type": "cloud", "ip_range": "10.40.0.0/20", "network_zone": "eu-central"}, 201)
	if a := act["action"].(map[string]any); a["status"] != "running" {
		t.Fatalf("new action %v, want running", a)
	}
	actID := id(t, act, "action")
	got := c.do("GET", fmt.Sprintf("/actions?id=%d&sort=status&sort=id", actID), nil, 200)["actions"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["status"] != "success" {
		t.Fatalf("polled action %v, want success", got)
	}
	c.do("POST", fmt.Sprintf("/networks/%d/actions/add_subnet", netID),
		map[string]any{"type": "cloud", "ip_range": "10.40.8.0/24", "network_zone": "eu-central"}, 409)

	fw := c.do("POST", "/firewalls", map[string]any{"name": "fw", "rules": []any{
		map[string]any{"direction": "in", "protocol": "tcp", "port": "443", "source_ips": []string{"0.0.0.0/0", "::/0"}},
	}}, 201)
	fwID := id(t, fw, "firewall")
	c.do("POST", "/firewalls", map[string]any{"name": "bad", "rules": []any{
		map[string]any{"direction": "in", "protocol": "tcp", "source_ips": []string{"0.0.0.0/0"}},
	}}, 400)
	pgID := id(t, c.do("POST", "/placement_groups", map[string]any{"name": "pg", "type": "spread"}, 201), "placement_group")
	keyID := id(t, c.do("POST", "/ssh_keys", map[string]any{"name": "k",
		"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDfYgG5qXTXAMlHXnsxKQEhHdVxQHu4axjVJ9j4SvKxC t"}, 201), "ssh_key")

	create := c.do("POST", "/servers", map[string]any{
		"name": "s1", "server_type": "cx22", "location": "fsn1",
		"ssh_keys": []int64{keyID}, "firewalls": []any{map[string]any{"firewall": fwID}},
		"placement_group": pgID, "user_data": "#cloud-config\n", "labels": map[string]string{"a": "b"},
	}, 400) // an image is required
	if errCode(create) != "invalid_input" {
		t.Fatalf("create without image: %v", create)
	}
	create = c.do("POST", "/servers", map[string]any{
		"name": "s1", "server_type": "cx22", "image": 201, "location": "fsn1",
		"ssh_keys": []int64{keyID}, "firewalls": []any{map[string]any{"firewall": fwID}},
		"placement_group": pgID, "user_data": "#cloud-config\n", "labels": map[string]string{"a": "b"},
		"public_net": map[string]any{"enable_ipv4": true, "enable_ipv6": true},
	}, 201)
	srvID := id(t, create, "server")
	if ud := c.do("GET", fmt.Sprintf("/servers/%d/user_data", srvID), nil, 200); ud["user_data"] != "#cloud-config\n" {
		t.Fatalf("user_data as created: %v", ud)
	}
	c.do("GET", "/servers/999999/user_data", nil, 404)
	c.do("POST", "/servers", map[string]any{"name": "s1", "server_type": "cx22", "image": "debian-12"}, 409)
	c.do("POST", "/servers", map[string]any{"name": "s2", "server_type": "cax11", "image": 201}, 400)

	c.do("POST", fmt.Sprintf("/servers/%d/actions/attach_to_network", srvID),
		map[string]any{"network": netID, "ip": "10.40.0.10", "alias_ips": []string{}}, 201)
	c.do("POST", fmt.Sprintf("/servers/%d/actions/attach_to_network", srvID),
		map[string]any{"network": netID, "ip": "10.40.0.11"}, 409) // already attached
	s2 := id(t, c.do("POST", "/servers", map[string]any{"name": "s2", "server_type": "cx22", "image": "debian-12"}, 201), "server")
	c.do("POST", fmt.Sprintf("/servers/%d/actions/attach_to_network", s2), map[string]any{"network": netID, "ip": "10.40.0.10"}, 409)
	c.do("POST", fmt.Sprintf("/servers/%d/actions/attach_to_network", s2), map[string]any{"network": netID, "ip": "10.41.0.10"}, 400)
	c.do("POST", fmt.Sprintf("/servers/%d/actions/attach_to_network", s2), map[string]any{"network": netID}, 201)

	s := c.do("GET", fmt.Sprintf("/servers/%d", srvID), nil, 200)["server"].(map[string]any)
	priv := s["private_net"].([]any)[0].(map[string]any)
	if priv["ip"] != "10.40.0.10" || int64(priv["network"].(float64)) != netID {
		t.Fatalf("private_net = %v", priv)
	}
	pub := s["public_net"].(map[string]any)
	if fws := pub["firewalls"].([]any); len(fws) != 1 || fws[0].(map[string]any)["status"] != "applied" {
		t.Fatalf("firewalls = %v", fws)
	}
	if !strings.HasSuffix(pub["ipv6"].(map[string]any)["ip"].(string), "::/64") {
		t.Fatalf("ipv6 = %v", pub["ipv6"])
	}
	if int64(s["placement_group"].(map[string]any)["id"].(float64)) != pgID {
		t.Fatalf("placement_group = %v", s["placement_group"])
	}
	applied := c.do("GET", fmt.Sprintf("/firewalls/%d", fwID), nil, 200)["firewall"].(map[string]any)["applied_to"].([]any)
	if len(applied) != 1 {
		t.Fatalf("applied_to = %v", applied)
	}

	c.do("DELETE", fmt.Sprintf("/firewalls/%d", fwID), nil, 409) // still applied
	c.do("POST", fmt.Sprintf("/networks/%d/actions/delete_subnet", netID), map[string]any{"ip_range": "10.40.0.0/20"}, 409)
	c.do("DELETE", fmt.Sprintf("/servers/%d", srvID), nil, 200)
	c.do("DELETE", fmt.Sprintf("/servers/%d", s2), nil, 200)
	c.do("GET", fmt.Sprintf("/servers/%d", srvID), nil, 404)
	c.do("POST", fmt.Sprintf("/networks/%d/actions/delete_subnet", netID), map[string]any{"ip_range": "10.40.0.0/20"}, 201)
	c.do("DELETE", fmt.Sprintf("/firewalls/%d", fwID), nil, 204)
	c.do("DELETE", fmt.Sprintf("/placement_groups/%d", pgID), nil, 204)
	c.do("DELETE", fmt.Sprintf("/ssh_keys/%d", keyID), nil, 204)
	c.do("DELETE", fmt.Sprintf("/networks/%d", netID), nil, 204)
	for k, n := range f.Counts() {
		if n != 0 {
			t.Errorf("%d %s left", n, k)
		}
	}
}

func TestPagination(t *testing.T) {
	_, c := setup(t)
	for i := range 3 {
		c.do("POST", "/placement_groups", map[string]any{"name": fmt.Sprintf("pg%d", i), "type": "spread"}, 201)
	}
	p := c.do("GET", "/placement_groups?per_page=2&page=2", nil, 200)
	if got := p["placement_groups"].([]any); len(got) != 1 {
		t.Fatalf("page 2 = %v", got)
	}
	pg := p["meta"].(map[string]any)["pagination"].(map[string]any)
	if pg["last_page"].(float64) != 2 || pg["next_page"] != nil || pg["total_entries"].(float64) != 3 {
		t.Fatalf("pagination = %v", pg)
	}
	if got := c.do("GET", "/placement_groups?name=pg1", nil, 200)["placement_groups"].([]any); len(got) != 1 {
		t.Fatalf("name filter = %v", got)
	}
}

func TestRejectsBadInput(t *testing.T) {
	_, c := setup(t)
	for _, tc := range []struct {
		path string
		body any
	}{
		{"/networks", map[string]any{"name": "n", "ip_range": "8.8.0.0/16"}},
		{"/networks", map[string]any{"name": "", "ip_range": "10.0.0.0/16"}},
		{"/ssh_keys", map[string]any{"name": "k", "public_key": "not a key"}},
		{"/placement_groups", map[string]any{"name": "p", "type": "cluster"}},
		{"/servers", map[string]any{"name": "s", "server_type": "cx22", "image": "debian-12", "location": "mars"}},
	} {
		e := c.do("POST", tc.path, tc.body, 400)
		if errCode(e) != "invalid_input" {
			t.Errorf("POST %s %v: %v", tc.path, tc.body, e)
		}
	}
	c.do("POST", "/networks", "{", 400)
}

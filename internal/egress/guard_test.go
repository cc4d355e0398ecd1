package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestGuardCheck(t *testing.T) {
	forbidden := []string{
		"127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fd00:ec2::254", "0.0.0.0", "::", "100.64.0.1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "224.0.0.1",
		"255.255.255.255", "198.18.0.1",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"}
	var none *Guard
	for _, a := range forbidden {
		if err := none.Check(netip.MustParseAddr(a)); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Check(%s) = %v; want ErrForbiddenAddress", a, err)
		}
	}
	for _, a := range allowed {
		if err := none.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("Check(%s) = %v; want allowed", a, err)
		}
	}
	nets, err := ParseAllowedNets("127.0.0.0/8, 10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(nets)
	for a, ok := range map[string]bool{"127.0.0.1": true, "::ffff:127.0.0.2": true, "10.1.2.3": true,
		"10.1.2.4": false, "169.254.169.254": false, "::1": false, "8.8.8.8": true} {
		if err := g.Check(netip.MustParseAddr(a)); (err == nil) != ok {
			t.Errorf("with %v: Check(%s) = %v; want allowed %v", nets, a, err, ok)
		}
	}
	err = none.Check(netip.MustParseAddr("169.254.169.254"))
	if !strings.Contains(err.Error(), "link-local") || !strings.Contains(err.Error(), AllowedNetsEnv) {
		t.Errorf("message %q: want the kind of address and the variable that allows it", err)
	}
}

func TestParseAllowedNets(t *testing.T) {
	got, err := ParseAllowedNets(" 127.0.0.0/8,::1 10.0.0.7/8 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v; want %v", got, want)
		}
	}
	if got, err := ParseAllowedNets(""); err != nil || len(got) != 0 {
		t.Errorf(`ParseAllowedNets("") = %v, %v; want none`, got, err)
	}
	for _, bad := range []string{"localhost", "10.0.0.0/33", "300.1.1.1", "*"} {
		if _, err := ParseAllowedNets(bad); err == nil || !strings.Contains(err.Error(), AllowedNetsEnv) {
			t.Errorf("ParseAllowedNets(%q) = %v; want an error naming %s", bad, err, AllowedNetsEnv)
		}
	}
}

func TestGuardCheckURL(t *testing.T) {
	var g *Guard
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://127.0.0.1:8080/hook",
		"http://[::1]/hook",
		"http://[::ffff:10.0.0.1]/hook",
		"http://localhost:9/hook", // a name: resolved (here by /etc/hosts) and refused
	} {
		if err := g.CheckURL(t.Context(), u); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("CheckURL(%s) = %v; want ErrForbiddenAddress", u, err)
		}
	}
	if err := g.CheckURL(t.Context(), "https://8.8.8.8/hook"); err != nil {
		t.Errorf("CheckURL(public) = %v", err)
	}
	if err := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).CheckURL(t.Context(), "http://localhost:9/hook"); err != nil {
		t.Errorf("CheckURL(localhost) with loopback allowed = %v", err)
	}
}

package router

import (
	"net/http"
	"testing"
)

// TestLocationBehindGateway: without AIGW_PUBLIC_URL, Location follows the
// prefix the gateway forwards (aigw-gateway: X-Forwarded-Prefix
// /function/router), so a client behind the gateway can follow it; a prefix
// that is not a plain path is ignored. AIGW_PUBLIC_URL as a path (stack.yml's
// default) wins over the header.
func TestLocationBehindGateway(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PublicURL = ""
	e := setup(t, cfg)
	e.register(t)
	cases := []struct{ prefix, want string }{
		{"/function/router", "/function/router/v1/jobs/"},
		{"/function/router/", "/function/router/v1/jobs/"},
		{"", "/v1/jobs/"},
		{"//evil.example", "/v1/jobs/"},
		{"/function/../admin", "/v1/jobs/"},
		{"https://evil.example/x", "/v1/jobs/"},
	}
	for _, c := range cases {
		var hdr []string
		if c.prefix != "" {
			hdr = []string{headerForwardedPrefix, c.prefix}
		}
		r := e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", e.token, `{"input":{"message":"hi"}}`, hdr...), http.StatusAccepted)
		var j jobReply
		r.decode(t, &j)
		if got := r.header.Get("Location"); got != c.want+j.ID {
			t.Errorf("X-Forwarded-Prefix %q: Location %q, want %q", c.prefix, got, c.want+j.ID)
		}
	}

	cfg.PublicURL = "/function/router"
	e2 := setup(t, cfg)
	e2.register(t)
	r := e2.want(t, e2.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", e2.token, `{"input":{"message":"hi"}}`, headerForwardedPrefix, "/other"), http.StatusAccepted)
	var j jobReply
	r.decode(t, &j)
	if got := r.header.Get("Location"); got != "/function/router/v1/jobs/"+j.ID {
		t.Errorf("AIGW_PUBLIC_URL=/function/router: Location %q", got)
	}
}

func TestReadConfigPublicURLPath(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"/function/router":                         "/function/router",
		"/function/router/":                        "/function/router",
		"https://api.example.com/function/router/": "https://api.example.com/function/router",
		"http://127.0.0.1:8080/function/router":    "http://127.0.0.1:8080/function/router",
	} {
		c, err := ReadConfig(getenv(map[string]string{
			"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://db/", "AIGW_REDIS_ADDRS": "r:1", "AIGW_PUBLIC_URL": v,
		}))
		if err != nil || c.PublicURL != want {
			t.Errorf("AIGW_PUBLIC_URL=%q: %q, %v; want %q", v, c.PublicURL, err, want)
		}
	}
	for _, v := range []string{"//evil.example", "function/router", "/a/../b", "https://x.example/?q=1", "ftp://x.example"} {
		if _, err := ReadConfig(getenv(map[string]string{
			"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://db/", "AIGW_REDIS_ADDRS": "r:1", "AIGW_PUBLIC_URL": v,
		})); err == nil {
			t.Errorf("AIGW_PUBLIC_URL=%q accepted", v)
		}
	}
}

package console

import (
	"errors"
	"strings"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
)

// DefaultUpstream is the gateway the console proxies to when
// AIGW_CONSOLE_UPSTREAM is unset: the local gateway of `make up`.
const DefaultUpstream = "http://127.0.0.1:8080"

// Config is the console function's configuration, read by ReadConfig.
type Config struct {
	Fn fnserve.Config
	// Upstream is the OpenFaaS gateway that serves the API functions
	// (AIGW_CONSOLE_UPSTREAM): the console sends the browser's calls to
	// {Upstream}/function/router, /function/auth, /function/orchestrator and
	// /function/executors.
	Upstream string
	// PublicPath is the path under which browsers reach the console
	// (AIGW_PUBLIC_URL, e.g. /function/console); empty: the request's
	// X-Forwarded-Prefix, else "/". It is the session cookie's path and the
	// pages' base.
	PublicPath string
}

// ReadConfig reads Config through getenv; a bad value is an error naming the
// variable.
func ReadConfig(getenv func(string) string) (Config, error) {
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	return c, r.Err()
}

// Read reads Config through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	c := Config{Fn: fnserve.Read(r)}
	c.Upstream = strings.TrimSuffix(r.URL("AIGW_CONSOLE_UPSTREAM", DefaultUpstream), "/")
	c.PublicPath = envconf.Parse(r, "AIGW_PUBLIC_URL", "", func(v string) (string, error) {
		if !validPath(v) {
			return "", errors.New("want the console's path, such as /function/console")
		}
		return strings.TrimSuffix(v, "/"), nil
	})
	return c
}

// validPath accepts an absolute URL path without a query, fragment or
// characters that would need quoting in a cookie or an HTML attribute.
func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || len(p) > 200 {
		return false
	}
	for _, c := range p {
		ok := c == '/' || c == '-' || c == '_' || c == '.' || c == '~' ||
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

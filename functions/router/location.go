package router

import (
	"net/http"
	"strings"
)

// headerForwardedPrefix is the path under which the gateway in front serves
// the router (aigw-gateway sends /function/router; the stock OpenFaaS gateway
// sends none, so stack.yml sets AIGW_PUBLIC_URL).
const headerForwardedPrefix = "X-Forwarded-Prefix"

// location is the URL of path (such as /v1/jobs/{id}) as the client reaches
// it, for Location headers: under PublicURL when set, else under the
// request's X-Forwarded-Prefix when it is a plain absolute path, else path.
func (a *api) location(r *http.Request, path string) string {
	if a.PublicURL != "" {
		return a.PublicURL + path
	}
	if p := r.Header.Get(headerForwardedPrefix); plainPath(p) {
		return strings.TrimSuffix(p, "/") + path
	}
	return path
}

// plainPath reports whether p is an absolute path of printable ASCII with no
// query, fragment, dot segment or empty segment: nothing that could turn a
// Location into another host ("//evil.example") or another resource.
func plainPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`?#\"<>`, c) >= 0 {
			return false
		}
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(p[1:], "/"), "/") {
		if seg == "" && p != "/" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

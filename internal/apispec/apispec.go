// Package apispec holds aigw's OpenAPI 3.1 document (openapi.json, embedded):
// the public API of the router, auth, orchestrator and executors functions
// as a client reaches them through the gateway. The router serves it at
// GET /v1/openapi.json (Handler).
//
// Each path item names its function in its servers entry
// (/function/<name>), so one document covers three functions whose paths are
// their own routes: /v1/jobs is the router's, /oauth/token the auth
// function's. Routes lists them; the functions' tests check that every route
// they register is in the document and every operation in the document is
// registered, so the two cannot drift. Transport validates a test's requests
// and responses against it.
package apispec

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

//go:embed openapi.json
var document []byte

// JSON returns the document.
func JSON() []byte { return slices.Clone(document) }

// Handler serves the document.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(document)
	})
}

// Route is one operation of the document: the function that serves it, the
// method and the path as the function routes it (e.g. router GET
// /v1/jobs/{id}).
type Route struct {
	Function string
	Method   string
	Path     string
}

func (r Route) String() string { return r.Function + " " + r.Method + " " + r.Path }

// FunctionPrefix is the gateway path of a function, e.g. /function/router.
func FunctionPrefix(fn string) string { return "/function/" + fn }

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

// Routes returns every operation of the document, sorted.
func Routes() ([]Route, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(document, &doc); err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	var out []Route
	for path, item := range doc.Paths {
		fn, err := function(item["servers"])
		if err != nil {
			return nil, fmt.Errorf("apispec: path %s: %w", path, err)
		}
		for _, m := range methods {
			if _, ok := item[m]; ok {
				out = append(out, Route{Function: fn, Method: strings.ToUpper(m), Path: path})
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// FunctionRoutes returns the operations of one function.
func FunctionRoutes(fn string) ([]Route, error) {
	all, err := Routes()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(r Route) bool { return r.Function != fn }), nil
}

// function reads the function name from a path item's servers entry.
func function(raw json.RawMessage) (string, error) {
	var servers []struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(raw, &servers); err != nil || len(servers) != 1 {
		return "", fmt.Errorf("want one servers entry /function/<name>, got %s", raw)
	}
	fn, ok := strings.CutPrefix(servers[0].URL, "/function/")
	if !ok || fn == "" || strings.Contains(fn, "/") {
		return "", fmt.Errorf("server %q is not /function/<name>", servers[0].URL)
	}
	return fn, nil
}

package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Load parses and validates the document (kin-openapi, OpenAPI 3.1 with JSON
// Schema 2020-12).
func Load() (*openapi3.T, error) {
	loaded.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(document)
		if err == nil {
			err = doc.Validate(context.Background())
		}
		if err != nil {
			loaded.err = fmt.Errorf("apispec: openapi.json: %w", err)
			return
		}
		loaded.doc = doc
		loaded.ops, loaded.err = operations(doc)
	})
	return loaded.doc, loaded.err
}

var loaded struct {
	once sync.Once
	doc  *openapi3.T
	ops  []operation
	err  error
}

// operation is a path of the document, matched by a regular expression.
type operation struct {
	fn     string
	path   string
	item   *openapi3.PathItem
	re     *regexp.Regexp
	params []string
	// static counts the path's literal segments: the most literal match wins
	// (/dead-letters/redrive before /dead-letters/{id}/redrive).
	static int
}

var paramRE = regexp.MustCompile(`\{([^}/]+)\}`)

func operations(doc *openapi3.T) ([]operation, error) {
	var out []operation
	for path, item := range doc.Paths.Map() {
		if len(item.Servers) != 1 {
			return nil, fmt.Errorf("apispec: path %s wants one servers entry", path)
		}
		fn, ok := strings.CutPrefix(item.Servers[0].URL, "/function/")
		if !ok {
			return nil, fmt.Errorf("apispec: path %s: server %q is not /function/<name>", path, item.Servers[0].URL)
		}
		op := operation{fn: fn, path: path, item: item}
		expr := "^"
		last := 0
		for _, m := range paramRE.FindAllStringSubmatchIndex(path, -1) {
			expr += regexp.QuoteMeta(path[last:m[0]]) + "([^/]+)"
			op.params = append(op.params, path[m[2]:m[3]])
			last = m[1]
		}
		expr += regexp.QuoteMeta(path[last:]) + "$"
		op.re = regexp.MustCompile(expr)
		op.static = strings.Count(path, "/") - len(op.params)
		out = append(out, op)
	}
	return out, nil
}

// find returns the operation of fn ("" when the request went to a function
// directly) whose path matches path, and the path's parameters.
func find(ops []operation, fn, path string) (*operation, map[string]string) {
	var best *operation
	var params map[string]string
	for i := range ops {
		op := &ops[i]
		if fn != "" && op.fn != fn {
			continue
		}
		m := op.re.FindStringSubmatch(path)
		if m == nil || (best != nil && best.static >= op.static) {
			continue
		}
		best, params = op, map[string]string{}
		for j, name := range op.params {
			params[name] = m[j+1]
		}
	}
	return best, params
}

// split cuts a gateway path /function/<fn>/rest or /async-function/<fn>/rest
// into fn and /rest; any other path is a function's own (fn "").
func split(path string) (fn, rest string, async bool) {
	for _, p := range []string{"/function/", "/async-function/"} {
		if after, ok := strings.CutPrefix(path, p); ok {
			name, tail, _ := strings.Cut(after, "/")
			return name, "/" + tail, p == "/async-function/"
		}
	}
	return "", path, false
}

// HealthPath is every function's health endpoint (the OpenFaaS function
// contract's, for the gateway and orchestrators): served, but not part of the
// API, so the document leaves it out and Transport lets it through unchecked.
const HealthPath = "/_/health"

// Transport returns a RoundTripper (over base, http.DefaultTransport when nil)
// that fails t on every exchange the document does not describe:
//   - a request to a path or method not in the document, unless the answer is
//     the API's 404 or 405;
//   - a request that breaks the document (parameters, body, credentials),
//     unless the answer is a 4xx: the API must refuse what the document calls
//     invalid;
//   - any response whose status, content type or body breaks the document.
//
// Requests go to the gateway (/function/<name>/…, the function named must
// serve the path) or straight to a function (its own paths). An event
// stream's body is passed on unread; an async invocation's answer is the
// gateway's, so only its request is checked.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base, doc: doc, ops: loaded.ops}
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
	doc  *openapi3.T
	ops  []operation
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	fn, path, async := split(req.URL.Path)
	if path == HealthPath {
		return resp, nil
	}
	what := req.Method + " " + req.URL.Path
	op, params := find(tr.ops, fn, path)
	var operation *openapi3.Operation
	if op != nil {
		operation = op.item.GetOperation(req.Method)
	}
	if operation == nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return tr.checkError(what, resp)
		}
		tr.t.Errorf("apispec: %s (answered %d) is not in the OpenAPI document", what, resp.StatusCode)
		return resp, nil
	}
	route := &routers.Route{Spec: tr.doc, Server: op.item.Servers[0], Path: op.path, PathItem: op.item, Method: req.Method, Operation: operation}
	vreq := req.Clone(context.Background())
	vreq.URL.Path = path
	if body != nil {
		vreq.Body = io.NopCloser(bytes.NewReader(body))
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		tr.t.Errorf("apispec: %s breaks the OpenAPI document but was answered %d:\n%v", what, resp.StatusCode, err)
	}
	if async {
		return resp, nil
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "text/event-stream" {
		out.Options.ExcludeResponseBody = true
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			tr.t.Errorf("apispec: the answer %d to %s breaks the OpenAPI document:\n%v", resp.StatusCode, what, err)
		}
		return resp, nil
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return resp, nil // the caller reads what there was and sees the error's effect
	}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		tr.t.Errorf("apispec: the answer %d to %s breaks the OpenAPI document:\n%v\nbody: %s", resp.StatusCode, what, err, snippet(b))
	}
	return resp, nil
}

// checkError checks that a 404 or 405 of a route outside the document is the
// API's error shape.
func (tr *transport) checkError(what string, resp *http.Response) (*http.Response, error) {
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return resp, nil
	}
	errSchema := tr.doc.Components.Schemas["Error"].Value
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		tr.t.Errorf("apispec: %s answered %d without a JSON error: %s", what, resp.StatusCode, snippet(b))
		return resp, nil
	}
	if err := errSchema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		tr.t.Errorf("apispec: %s answered %d with a body that is not the API's error: %v\nbody: %s", what, resp.StatusCode, err, snippet(b))
	}
	return resp, nil
}

// authenticate checks that a request carries the credentials a security
// scheme asks for (their validity is the API's to judge).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme, _, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	want := in.SecurityScheme.Scheme
	if in.SecurityScheme.Type != "http" || !strings.EqualFold(scheme, want) {
		return errors.New("no " + want + " credentials in the Authorization header")
	}
	return nil
}

func snippet(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

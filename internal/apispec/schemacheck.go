package apispec

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// CheckSchema fails t unless the document's schema name has exactly the
// JSON fields of v's type (a struct; embedded structs' fields included), with
// extra: the fields the API adds to the type when it writes it.
func CheckSchema(t testing.TB, name string, v any, extra ...string) {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		t.Errorf("internal/apispec/openapi.json has no schema %s", name)
		return
	}
	var documented []string
	for p := range ref.Value.Properties {
		documented = append(documented, p)
	}
	fields := append(jsonFields(reflect.TypeOf(v)), extra...)
	for _, f := range fields {
		if !slices.Contains(documented, f) {
			t.Errorf("%T has the JSON field %q, which the schema %s of internal/apispec/openapi.json lacks", v, f, name)
		}
	}
	for _, p := range documented {
		if !slices.Contains(fields, p) {
			t.Errorf("the schema %s of internal/apispec/openapi.json has %q, which %T does not", name, p, v)
		}
	}
}

// jsonFields lists the JSON field names of a struct type, embedded structs'
// fields included, "-" left out.
func jsonFields(t reflect.Type) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// CheckRoutes fails t unless the document's routes of function fn (its
// operations' servers name /function/fn) are exactly served: "METHOD /path"
// patterns, the function's own internal routes left out by the caller. name
// is how the messages call the function.
func CheckRoutes(t testing.TB, fn, name string, served []string) {
	t.Helper()
	routes, err := FunctionRoutes(fn)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range routes {
		documented = append(documented, r.Method+" "+r.Path)
	}
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("%s serves %s, which internal/apispec/openapi.json does not document", name, s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("internal/apispec/openapi.json documents %s, which %s does not serve", d, name)
		}
	}
}

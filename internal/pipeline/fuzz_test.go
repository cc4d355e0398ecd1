package pipeline

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: no definition makes Parse panic, a valid one orders every step
// after the steps it needs, and every path of it resolves or errors cleanly.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"steps":[{"name":"a","algorithm":"echo","input":{"m":"$.input.m"}},{"name":"b","algorithm":"k","needs":["a"],"for_each":"$.steps.a.output.items","input":{"p":"$.item.p","i":"$.index"}}]}`))
	f.Add([]byte(`{"steps":[{"name":"a","algorithm":"x","needs":["b"]},{"name":"b","algorithm":"x","needs":["a"]}]}`))
	f.Add([]byte(`{"steps":[{"name":"a","algorithm":"x","input":["$.input[0]","$$.lit"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, s := range d.Order() {
			pos[s.Name] = i
		}
		if len(pos) != len(d.Steps) {
			t.Fatalf("order has %d steps, definition %d", len(pos), len(d.Steps))
		}
		for _, s := range d.Steps {
			for _, n := range s.Needs {
				if pos[n] >= pos[s.Name] {
					t.Fatalf("step %s ordered before its need %s", s.Name, n)
				}
			}
			sc := Scope{Input: map[string]any{}, Outputs: map[string]any{}, HasItem: s.ForEach != ""}
			if in, err := s.Resolve(sc); err == nil && !json.Valid(in) {
				t.Fatalf("step %s resolved to invalid JSON %q", s.Name, in)
			}
		}
	})
}

// FuzzParsePath: ParsePath never panics, keeps the text, and a parsed path
// evaluates without panicking against any shape of data.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"$.input", "$.steps.a.output.items[0]", "$.item.x[3]", "$.index", "$[0]", "$.input[01]", "$.a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				t.Fatalf("a path error must not be a definition error: %v", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q, want %q", p, s)
		}
		data := map[string]any{"a": []any{map[string]any{"b": "c"}}, "x": []any{1, 2, 3, 4}}
		_, _ = p.Eval(Scope{Input: data, Outputs: map[string]any{p.Step(): data}, Item: data, HasItem: true})
	})
}

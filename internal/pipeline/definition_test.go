package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	good := map[string]string{
		"$.input":                         "",
		"$.input.a.b[0][12].c-d_e":        "",
		"$.steps.a.output":                "a",
		"$.steps.split-1.output.items[3]": "split-1",
		"$.item.points":                   "",
		"$.index":                         "",
	}
	for in, step := range good {
		p, err := ParsePath(in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", in, err)
			continue
		}
		if p.Step() != step || p.String() != in {
			t.Errorf("ParsePath(%q) step %q string %q", in, p.Step(), p)
		}
	}
	bad := map[string]string{
		"":                  "must start with",
		"$":                 "must start with",
		"input.a":           "must start with",
		"$.":                "expected a key",
		"$.input..a":        "expected a key",
		"$.input[":          "unclosed",
		"$.input[-1]":       "not an array index",
		"$.input[01]":       "not an array index",
		"$.input[+1]":       "not an array index",
		"$.input[x]":        "not an array index",
		"$[0]":              "must start with",
		"$.output":          "must start with $.input",
		"$.steps.a":         "$.steps.<step name>.output",
		"$.steps.a.result":  "$.steps.<step name>.output",
		"$.steps[0].output": "$.steps.<step name>.output",
		"$.index.x":         "has no fields",
		"$.input a":         "unexpected",
		"$.input.a$":        "unexpected",
	}
	for in, want := range bad {
		if _, err := ParsePath(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePath(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestEval(t *testing.T) {
	var input, out any
	if err := decode([]byte(`{"a":{"b":[10,{"c":"x"}]},"big":12345678901234567890}`), &input); err != nil {
		t.Fatal(err)
	}
	if err := decode([]byte(`{"items":[{"p":1},{"p":2}]}`), &out); err != nil {
		t.Fatal(err)
	}
	sc := Scope{Input: input, Outputs: map[string]any{"s": out}, Item: map[string]any{"p": json.Number("7")}, Index: 4, HasItem: true}
	cases := map[string]string{
		"$.input.a.b[1].c":            `"x"`,
		"$.input.big":                 `12345678901234567890`,
		"$.steps.s.output.items":      `[{"p":1},{"p":2}]`,
		"$.steps.s.output.items[1].p": `2`,
		"$.item.p":                    `7`,
		"$.index":                     `4`,
	}
	for in, want := range cases {
		v, err := mustPath(t, in).Eval(sc)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got, _ := json.Marshal(v); string(got) != want {
			t.Errorf("%s = %s, want %s", in, got, want)
		}
	}
	fails := map[string]string{
		"$.input.nope":         `no field "nope"`,
		"$.input.a.b[5]":       "out of range",
		"$.input.a.b.c":        "applied to an array",
		"$.input.a[0]":         "applied to an object",
		"$.input.big.x":        "applied to a number",
		"$.steps.other.output": "has no output yet",
	}
	for in, want := range fails {
		if _, err := mustPath(t, in).Eval(sc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %v, want an error containing %q", in, err, want)
		}
	}
	if _, err := mustPath(t, "$.item").Eval(Scope{}); err == nil {
		t.Error("$.item outside for_each evaluated")
	}
}

func mustPath(t *testing.T, s string) Path {
	t.Helper()
	p, err := ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDefinition(t *testing.T) {
	d, err := Parse([]byte(`{"steps":[
		{"name":"b","algorithm":"kmeans","needs":["a"],"input":{"points":"$.steps.a.output.points"},"for_each":"$.steps.a.output.items"},
		{"name":"c","algorithm":"echo","needs":["b"],"input":{"all":"$.steps.a.output","lit":"$$.not.a.path","n":[1,"$.input.n"]}},
		{"name":"a","algorithm":"echo","input":{"message":"$.input.text"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range d.Order() {
		order = append(order, s.Name)
	}
	if strings.Join(order, ",") != "a,b,c" {
		t.Fatalf("order = %v, want a,b,c", order)
	}
	var in any
	if err := decode([]byte(`{"n":5,"text":"hi"}`), &in); err != nil {
		t.Fatal(err)
	}
	got, err := d.Steps[1].Resolve(Scope{Input: in, Outputs: map[string]any{"a": map[string]any{"x": true}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"all":{"x":true},"lit":"$.not.a.path","n":[1,5]}` {
		t.Fatalf("resolved input = %s", got)
	}
}

func TestDefinitionErrorsNameTheStep(t *testing.T) {
	cases := map[string]struct{ doc, step, msg string }{
		"unknown need": {`{"steps":[{"name":"a","algorithm":"x","needs":["zz"]}]}`, "a", `unknown step "zz"`},
		"self need":    {`{"steps":[{"name":"a","algorithm":"x","needs":["a"]}]}`, "a", "needs itself"},
		"cycle": {`{"steps":[{"name":"a","algorithm":"x","needs":["c"]},{"name":"b","algorithm":"x","needs":["a"]},{"name":"c","algorithm":"x","needs":["b"]}]}`,
			"a", "cycle: a → c → b → a"},
		"duplicate":       {`{"steps":[{"name":"a","algorithm":"x"},{"name":"a","algorithm":"y"}]}`, "a", "used by two steps"},
		"bad name":        {`{"steps":[{"name":"A b","algorithm":"x"}]}`, "A b", "name must be"},
		"no algorithm":    {`{"steps":[{"name":"a"}]}`, "a", "algorithm is required"},
		"no steps":        {`{"steps":[]}`, "", "at least one step"},
		"bad path":        {`{"steps":[{"name":"a","algorithm":"x","input":{"p":"$.inptu.x"}}]}`, "a", "must start with $.input"},
		"not needed":      {`{"steps":[{"name":"a","algorithm":"x"},{"name":"b","algorithm":"x","input":"$.steps.a.output"}]}`, "b", "does not need"},
		"own output":      {`{"steps":[{"name":"a","algorithm":"x","input":["$.steps.a.output"]}]}`, "a", "own output"},
		"item no each":    {`{"steps":[{"name":"a","algorithm":"x","input":{"v":"$.item"}}]}`, "a", "only in a for_each step"},
		"bad for_each":    {`{"steps":[{"name":"a","algorithm":"x","for_each":"items"}]}`, "a", "for_each"},
		"each on item":    {`{"steps":[{"name":"a","algorithm":"x","for_each":"$.item"}]}`, "a", "cannot read $.item"},
		"each not needed": {`{"steps":[{"name":"a","algorithm":"x"},{"name":"b","algorithm":"x","for_each":"$.steps.a.output"}]}`, "b", "does not need"},
		"needs twice":     {`{"steps":[{"name":"a","algorithm":"x"},{"name":"b","algorithm":"x","needs":["a","a"]}]}`, "b", "twice"},
	}
	for name, c := range cases {
		_, err := Parse([]byte(c.doc))
		var de *DefinitionError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse = %v, want a *DefinitionError", name, err)
			continue
		}
		if de.Step != c.step || !strings.Contains(de.Message, c.msg) {
			t.Errorf("%s: error %q (step %q), want step %q and %q", name, de, de.Step, c.step, c.msg)
		}
	}
	for _, doc := range []string{`{"steps":[{"name":"a","algorithm":"x","bogus":1}]}`, `{"steps":`, `{"steps":[]} {}`} {
		if _, err := Parse([]byte(doc)); err == nil || errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) = %v, want a malformed-document error", doc, err)
		}
	}
}

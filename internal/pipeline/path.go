package pipeline

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A Path points into the data a step's input is built from:
//
//	$.input…                   the run's input
//	$.steps.<name>.output…     the output of an earlier step (one it needs, directly or not)
//	$.item…, $.index           the element of a for_each step's array, and its index
//
// followed by any number of .key (letters, digits, _ and -) and [n] segments,
// e.g. $.steps.split.output.items[0].points.
type Path struct {
	raw  string
	segs []segment
}

type segment struct {
	key   string
	index int // used when key == ""
}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+`)

// Roots of a path.
const (
	rootInput = "input"
	rootSteps = "steps"
	rootItem  = "item"
	rootIndex = "index"
)

// IsPath reports whether a string value of a step's input is a path (starts
// with "$.") rather than a literal. "$$…" is the literal "$…".
func IsPath(s string) bool { return strings.HasPrefix(s, "$.") }

// ParsePath parses a path and checks its shape (root, step output).
func ParsePath(s string) (Path, error) {
	p := Path{raw: s}
	rest, ok := strings.CutPrefix(s, "$")
	if !ok || rest == "" {
		return p, fmt.Errorf("path %q must start with $. (e.g. $.input.x or $.steps.a.output)", s)
	}
	for rest != "" {
		switch rest[0] {
		case '.':
			key := keyRE.FindString(rest[1:])
			if key == "" {
				return p, fmt.Errorf("path %q: expected a key (letters, digits, _ or -) after '.' at byte %d", s, len(s)-len(rest)+1)
			}
			p.segs = append(p.segs, segment{key: key})
			rest = rest[1+len(key):]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return p, fmt.Errorf("path %q: unclosed '['", s)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 || rest[1] == '+' || (len(rest[1:end]) > 1 && rest[1] == '0') {
				return p, fmt.Errorf("path %q: %q is not an array index (want [0], [1], …)", s, rest[:end+1])
			}
			if len(p.segs) == 0 {
				return p, fmt.Errorf("path %q must start with $. followed by input, steps, item or index", s)
			}
			p.segs = append(p.segs, segment{index: n})
			rest = rest[end+1:]
		default:
			return p, fmt.Errorf("path %q: unexpected %q at byte %d (segments are .key or [n])", s, rest[0], len(s)-len(rest))
		}
	}
	switch p.segs[0].key {
	case rootInput, rootItem:
	case rootIndex:
		if len(p.segs) > 1 {
			return p, fmt.Errorf("path %q: $.index is a number and has no fields", s)
		}
	case rootSteps:
		if len(p.segs) < 3 || p.segs[1].key == "" || p.segs[2].key != "output" {
			return p, fmt.Errorf("path %q: a step's result is $.steps.<step name>.output…", s)
		}
	default:
		return p, fmt.Errorf("path %q must start with $.input, $.steps, $.item or $.index", s)
	}
	return p, nil
}

// String returns the path as written.
func (p Path) String() string { return p.raw }

// Step returns the step whose output the path reads, or "".
func (p Path) Step() string {
	if p.segs[0].key == rootSteps {
		return p.segs[1].key
	}
	return ""
}

// usesItem reports whether the path reads the for_each element.
func (p Path) usesItem() bool { return p.segs[0].key == rootItem || p.segs[0].key == rootIndex }

// Scope is what paths are evaluated against. Values are decoded JSON
// (map[string]any, []any, json.Number, string, bool, nil).
type Scope struct {
	Input   any
	Outputs map[string]any
	// Item and Index are set in a for_each step.
	Item    any
	Index   int
	HasItem bool
}

// Eval returns the value the path points to in sc.
func (p Path) Eval(sc Scope) (any, error) {
	var v any
	segs := p.segs[1:]
	switch p.segs[0].key {
	case rootInput:
		v = sc.Input
	case rootSteps:
		out, ok := sc.Outputs[p.segs[1].key]
		if !ok {
			return nil, fmt.Errorf("%s: step %q has no output yet", p.raw, p.segs[1].key)
		}
		v, segs = out, p.segs[3:]
	case rootItem, rootIndex:
		if !sc.HasItem {
			return nil, fmt.Errorf("%s: only a for_each step has an item", p.raw)
		}
		if p.segs[0].key == rootIndex {
			return json.Number(strconv.Itoa(sc.Index)), nil
		}
		v = sc.Item
	}
	for _, s := range segs {
		switch x := v.(type) {
		case map[string]any:
			if s.key == "" {
				return nil, fmt.Errorf("%s: [%d] applied to an object", p.raw, s.index)
			}
			next, ok := x[s.key]
			if !ok {
				return nil, fmt.Errorf("%s: no field %q", p.raw, s.key)
			}
			v = next
		case []any:
			if s.key != "" {
				return nil, fmt.Errorf("%s: .%s applied to an array", p.raw, s.key)
			}
			if s.index >= len(x) {
				return nil, fmt.Errorf("%s: index %d out of range (length %d)", p.raw, s.index, len(x))
			}
			v = x[s.index]
		default:
			return nil, fmt.Errorf("%s: %s applied to %s", p.raw, s, jsonKind(v))
		}
	}
	return v, nil
}

func (s segment) String() string {
	if s.key != "" {
		return "." + s.key
	}
	return "[" + strconv.Itoa(s.index) + "]"
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

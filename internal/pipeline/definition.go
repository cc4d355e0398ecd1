// Package pipeline runs chains and DAGs of algorithm steps as one pipeline run.
//
// A pipeline is registered as a list of steps. Each step runs one algorithm
// with an input built from the run's input and earlier steps' outputs: string
// values of the input that start with "$." are paths (see Path) replaced by what
// they point to; "$$…" stands for a literal "$…". A step waits for the steps it
// needs; one with for_each runs once per element of an array (the element is
// $.item, its position $.index) and its output is the array of their outputs.
//
//	{"steps": [
//	  {"name": "a", "algorithm": "echo", "input": {"items": "$.input.items"}},
//	  {"name": "b", "algorithm": "kmeans", "needs": ["a"],
//	   "for_each": "$.steps.a.output.items", "input": {"points": "$.item.points"}}
//	]}
//
// Runs advance on each orchestrator tick (and right after they are created):
// step jobs that finished are collected, newly unblocked steps are submitted
// (with an idempotency key per run, step and element, so an advance repeated
// after a crash never submits twice), a failed step fails the run and cancels
// its other steps, and the run succeeds when every step has.
package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/submit"
)

// Limits of a definition.
const (
	MaxSteps = 64
	// MaxFanOut bounds the elements a for_each step runs over; a longer array
	// fails the step.
	MaxFanOut = 256
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidName reports whether s may name a pipeline or a step.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ErrInvalid is matched by every *DefinitionError.
var ErrInvalid = errors.New("invalid pipeline definition")

// DefinitionError is a rule a definition breaks; Step names the step ("" for
// the definition as a whole).
type DefinitionError struct {
	Step    string
	Message string
}

func (e *DefinitionError) Error() string {
	if e.Step == "" {
		return "pipeline: " + e.Message
	}
	return fmt.Sprintf("step %q: %s", e.Step, e.Message)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *DefinitionError) Is(target error) bool { return target == ErrInvalid }

func stepErr(step, format string, args ...any) *DefinitionError {
	return &DefinitionError{Step: step, Message: fmt.Sprintf(format, args...)}
}

// Definition is what PUT /v1/pipelines/{name} registers.
type Definition struct {
	Description string `json:"description,omitempty" bson:"description,omitempty"`
	Steps       []Step `json:"steps" bson:"steps"`
}

// Step is one algorithm of a pipeline.
type Step struct {
	Name      string `json:"name" bson:"name"`
	Algorithm string `json:"algorithm" bson:"algorithm"`
	// Version pins the algorithm's version; "" takes its highest.
	Version string `json:"version,omitempty" bson:"version,omitempty"`
	// Input is the job input template (any JSON value; see the package doc).
	Input json.RawMessage `json:"input,omitempty" bson:"input,omitempty"`
	// Needs are the steps that must succeed first.
	Needs []string `json:"needs,omitempty" bson:"needs,omitempty"`
	// ForEach, a path to an array, runs the step once per element.
	ForEach string `json:"for_each,omitempty" bson:"for_each,omitempty"`
	// Policy applies to the step's jobs, as to a submitted job.
	Policy submit.Policy `json:"policy,omitzero" bson:"policy"`
}

// Parse decodes and validates a definition. A malformed document is an error
// that is not ErrInvalid; a document that breaks a rule is a *DefinitionError.
func Parse(data []byte) (*Definition, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("pipeline definition: %w", err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, errors.New("pipeline definition: data after the JSON object")
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks names, needs (known, no cycles), for_each and every path of
// each step's input; paths may only read steps the step needs, directly or not.
func (d *Definition) Validate() error {
	if len(d.Steps) == 0 {
		return stepErr("", "steps: at least one step is required")
	}
	if len(d.Steps) > MaxSteps {
		return stepErr("", "%d steps, over the limit of %d", len(d.Steps), MaxSteps)
	}
	byName := make(map[string]*Step, len(d.Steps))
	for i := range d.Steps {
		s := &d.Steps[i]
		if !ValidName(s.Name) {
			return stepErr(s.Name, "name must be 1-63 characters: a lowercase letter, then lowercase letters, digits, _ or - (step %d)", i)
		}
		if byName[s.Name] != nil {
			return stepErr(s.Name, "name is used by two steps")
		}
		if s.Algorithm == "" {
			return stepErr(s.Name, "algorithm is required")
		}
		byName[s.Name] = s
	}
	for i := range d.Steps {
		s := &d.Steps[i]
		seen := map[string]bool{}
		for _, n := range s.Needs {
			switch {
			case n == s.Name:
				return stepErr(s.Name, "needs itself")
			case byName[n] == nil:
				return stepErr(s.Name, "needs unknown step %q", n)
			case seen[n]:
				return stepErr(s.Name, "needs %q twice", n)
			}
			seen[n] = true
		}
	}
	order, err := d.order(byName)
	if err != nil {
		return err
	}
	ancestors := map[string]map[string]bool{}
	for _, s := range order {
		anc := map[string]bool{}
		for _, n := range s.Needs {
			anc[n] = true
			for a := range ancestors[n] {
				anc[a] = true
			}
		}
		ancestors[s.Name] = anc
		if err := s.validatePaths(anc); err != nil {
			return err
		}
	}
	return nil
}

// order returns the steps in an order where each comes after those it needs,
// or an error naming a step on a cycle.
func (d *Definition) order(byName map[string]*Step) ([]*Step, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := make(map[string]int, len(d.Steps))
	var out []*Step
	var visit func(s *Step, path []string) error
	visit = func(s *Step, path []string) error {
		switch state[s.Name] {
		case done:
			return nil
		case visiting:
			i := 0
			for path[i] != s.Name {
				i++
			}
			return stepErr(s.Name, "needs form a cycle: %s", strings.Join(append(path[i:], s.Name), " → "))
		}
		state[s.Name] = visiting
		for _, n := range s.Needs {
			if err := visit(byName[n], append(path, s.Name)); err != nil {
				return err
			}
		}
		state[s.Name] = done
		out = append(out, s)
		return nil
	}
	for i := range d.Steps {
		if err := visit(&d.Steps[i], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Order returns the steps of a valid definition, each after the steps it needs.
func (d *Definition) Order() []*Step {
	byName := make(map[string]*Step, len(d.Steps))
	for i := range d.Steps {
		byName[d.Steps[i].Name] = &d.Steps[i]
	}
	out, err := d.order(byName)
	if err != nil {
		panic("pipeline: Order of an invalid definition: " + err.Error())
	}
	return out
}

func (s *Step) validatePaths(ancestors map[string]bool) error {
	check := func(where string, p Path) error {
		if st := p.Step(); st != "" {
			if st == s.Name {
				return stepErr(s.Name, "%s %s reads the step's own output", where, p)
			}
			if !ancestors[st] {
				return stepErr(s.Name, "%s %s reads step %q, which the step does not need (add it to needs)", where, p, st)
			}
		}
		return nil
	}
	if s.ForEach != "" {
		p, err := ParsePath(s.ForEach)
		if err != nil {
			return stepErr(s.Name, "for_each: %v", err)
		}
		if p.usesItem() {
			return stepErr(s.Name, "for_each %s cannot read $.item or $.index", p)
		}
		if err := check("for_each", p); err != nil {
			return err
		}
	}
	if len(s.Input) == 0 {
		return nil
	}
	var tmpl any
	if err := decode(s.Input, &tmpl); err != nil {
		return stepErr(s.Name, "input is not valid JSON: %v", err)
	}
	return walkStrings(tmpl, func(str string) error {
		if !IsPath(str) {
			return nil
		}
		p, err := ParsePath(str)
		if err != nil {
			return stepErr(s.Name, "input: %v", err)
		}
		if p.usesItem() && s.ForEach == "" {
			return stepErr(s.Name, "input %s: $.item and $.index exist only in a for_each step", p)
		}
		return check("input", p)
	})
}

// walkStrings calls fn on every string of a decoded JSON value (not on keys).
func walkStrings(v any, fn func(string) error) error {
	switch x := v.(type) {
	case string:
		return fn(x)
	case map[string]any:
		for _, e := range x {
			if err := walkStrings(e, fn); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkStrings(e, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode reads JSON keeping numbers exact (json.Number).
func decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Resolve builds a step's job input from its template: every path is replaced
// by its value in sc, "$$…" by "$…".
func (s *Step) Resolve(sc Scope) (json.RawMessage, error) {
	if len(s.Input) == 0 {
		return json.RawMessage(`{}`), nil
	}
	var tmpl any
	if err := decode(s.Input, &tmpl); err != nil {
		return nil, fmt.Errorf("input is not valid JSON: %w", err)
	}
	v, err := resolve(tmpl, sc)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func resolve(v any, sc Scope) (any, error) {
	switch x := v.(type) {
	case string:
		if IsPath(x) {
			p, err := ParsePath(x)
			if err != nil {
				return nil, err
			}
			return p.Eval(sc)
		}
		if strings.HasPrefix(x, "$$") {
			return x[1:], nil
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := resolve(e, sc)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolve(e, sc)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// Items evaluates a for_each step's array in sc.
func (s *Step) Items(sc Scope) ([]any, error) {
	p, err := ParsePath(s.ForEach)
	if err != nil {
		return nil, err
	}
	v, err := p.Eval(sc)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("for_each %s is %s, not an array", p, jsonKind(v))
	}
	if len(arr) > MaxFanOut {
		return nil, fmt.Errorf("for_each %s has %d elements, over the limit of %d", p, len(arr), MaxFanOut)
	}
	return arr, nil
}

// Pipeline is a tenant's registered definition.
type Pipeline struct {
	// ID is tenant + "/" + name.
	ID         string `json:"-" bson:"_id"`
	Tenant     string `json:"-" bson:"tenant"`
	Name       string `json:"name" bson:"name"`
	Definition `bson:",inline"`
	// Version counts the registrations of this name, from 1.
	Version   int       `json:"version" bson:"version"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

package apispec

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/webhook"
)

// jsonFields lists the JSON field names of a struct type, embedded structs'
// fields included, "-" left out.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "":
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, jsonFields(ft)...)
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

// TestSchemasMatchTheGoTypes: each schema of the document has exactly the
// JSON fields of the Go type the API writes, so a field added to a record
// shows up here before a client meets it.
func TestSchemasMatchTheGoTypes(t *testing.T) {
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		v     any
		extra []string // fields the API adds to the type
	}{
		"Job":                 {job.Job{}, []string{"queue_position"}},
		"JobError":            {job.Error{}, nil},
		"Webhook":             {job.Webhook{}, nil},
		"Artifact":            {job.Artifact{}, nil},
		"AlgorithmDefinition": {algorithm.Definition{}, nil},
		"Runtime":             {algorithm.Runtime{}, nil},
		"Resources":           {algorithm.Resources{}, nil},
		"Delivery":            {webhook.Delivery{}, nil},
		"DeliveryAttempt":     {webhook.Attempt{}, nil},
		"Policy":              {submit.Policy{}, nil},
		"Pipeline":            {pipeline.Pipeline{}, nil},
		"PipelineDefinition":  {pipeline.Definition{}, nil},
		"Step":                {pipeline.Step{}, nil},
		"PipelineRun":         {pipeline.Run{}, nil},
		"StepRun":             {pipeline.StepRun{}, nil},
	} {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Errorf("no schema %s", name)
			continue
		}
		var documented []string
		for p := range ref.Value.Properties {
			documented = append(documented, p)
		}
		fields := append(jsonFields(reflect.TypeOf(c.v)), c.extra...)
		for _, f := range fields {
			if !slices.Contains(documented, f) {
				t.Errorf("%T has the JSON field %q, which the schema %s of internal/apispec/openapi.json lacks", c.v, f, name)
			}
		}
		for _, p := range documented {
			if !slices.Contains(fields, p) {
				t.Errorf("the schema %s of internal/apispec/openapi.json has %q, which %T does not", name, p, c.v)
			}
		}
	}
}

package submit

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/aigw/aigw/internal/algorithm"
)

// maxCachedSchemas bounds the schema cache; past it the cache starts over.
const maxCachedSchemas = 1024

// schemaCache holds compiled input schemas by name@version and updated_at, so
// an updated definition is compiled afresh and a stale entry is never used.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]*jsonschema.Schema // nil value: the definition has no schema
}

func newSchemaCache() *schemaCache { return &schemaCache{m: map[string]*jsonschema.Schema{}} }

func (c *schemaCache) get(def *algorithm.Definition) (*jsonschema.Schema, error) {
	key := def.ID() + "@" + def.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	c.mu.Lock()
	sch, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return sch, nil
	}
	sch, err := def.CompileSchema()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedSchemas {
		clear(c.m)
	}
	c.m[key] = sch
	c.mu.Unlock()
	return sch, nil
}

// validate checks input against sch and names the first failing value (by
// JSON Pointer, in document order) and the rule it broke.
func validate(sch *jsonschema.Schema, input json.RawMessage) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return &InputError{Message: "input is not valid JSON: " + err.Error()}
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &InputError{Message: err.Error()}
	}
	return inputError(ve)
}

// inputError turns a validation error into the InputError of its first leaf:
// the basic output lists every failing keyword with its instance location.
func inputError(ve *jsonschema.ValidationError) *InputError {
	var leaves []*InputError
	var walk func(u jsonschema.OutputUnit)
	walk = func(u jsonschema.OutputUnit) {
		if u.Error != nil && len(u.Errors) == 0 {
			leaves = append(leaves, &InputError{Path: u.InstanceLocation, Message: u.Error.String()})
		}
		for _, c := range u.Errors {
			walk(c)
		}
	}
	walk(*ve.BasicOutput())
	if len(leaves) == 0 {
		return &InputError{Path: pointer(ve.InstanceLocation), Message: "does not match the input schema"}
	}
	slices.SortStableFunc(leaves, func(a, b *InputError) int { return strings.Compare(a.Path, b.Path) })
	return leaves[0]
}

// pointer builds a JSON Pointer from reference tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(jsonPointerEscaper.Replace(t))
	}
	return b.String()
}

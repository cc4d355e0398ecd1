// Package inputfiles finds and rewrites the files a job's input refers to:
// anywhere in the input, an object {"$file": "<upload id or https URL>"}
// (optionally with "size" and "sha256") names a file. The router resolves
// each reference when the job is submitted (the tenant's own upload, or a
// URL to a public address) into its canonical form, {"$file", "size",
// "sha256"}; the worker fetches each into the run's directory, checks size
// and SHA-256, and gives the algorithm {"path", "size", "sha256"} instead.
package inputfiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Key is the field that marks a file reference.
const Key = "$file"

// Ref is one file reference of an input.
type Ref struct {
	// Path is the reference's JSON Pointer in the input (e.g. /files/0).
	Path string
	// Upload is the id of an upload (POST /v1/uploads), or URL an https URL.
	Upload, URL string
	// Size and SHA256 are what the file must be (0 / "": not said).
	Size   int64
	SHA256 string
}

// Error is a malformed reference, named by its JSON Pointer.
type Error struct{ Path, Message string }

func (e *Error) Error() string { return fmt.Sprintf("input at %s: %s", e.Path, e.Message) }

var (
	uploadIDRE = regexp.MustCompile(`^[0-9A-Za-z]{26}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidUploadID reports whether s has the form of an upload id (a ULID).
func ValidUploadID(s string) bool { return uploadIDRE.MatchString(s) }

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool { return sha256RE.MatchString(s) }

// Has reports, cheaply, whether input may hold a reference.
func Has(input []byte) bool { return bytes.Contains(input, []byte(`"`+Key+`"`)) }

// Find returns the references of input, in document order (a JSON object's
// keys sorted).
func Find(input json.RawMessage) ([]Ref, error) {
	var refs []Ref
	_, err := Rewrite(input, func(r Ref) (any, error) {
		refs = append(refs, r)
		return nil, nil
	})
	return refs, err
}

// Rewrite returns input with each reference replaced by what repl returns
// for it (nil: left as it is). Numbers keep their text.
func Rewrite(input json.RawMessage, repl func(Ref) (any, error)) (json.RawMessage, error) {
	if !Has(input) {
		return input, nil
	}
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	changed := false
	out, err := walk(doc, "", func(r Ref) (any, error) {
		v, err := repl(r)
		if v != nil {
			changed = true
		}
		return v, err
	})
	if err != nil {
		return nil, err
	}
	if !changed {
		return input, nil
	}
	return json.Marshal(out)
}

func walk(v any, path string, repl func(Ref) (any, error)) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t[Key]; ok {
			r, err := parse(t, path)
			if err != nil {
				return nil, err
			}
			nv, err := repl(r)
			if err != nil || nv == nil {
				return v, err
			}
			return nv, nil
		}
		for k, e := range t {
			nv, err := walk(e, path+"/"+escape(k), repl)
			if err != nil {
				return nil, err
			}
			t[k] = nv
		}
	case []any:
		for i, e := range t {
			nv, err := walk(e, path+"/"+strconv.Itoa(i), repl)
			if err != nil {
				return nil, err
			}
			t[i] = nv
		}
	}
	return v, nil
}

func escape(k string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(k) }

func parse(m map[string]any, path string) (Ref, error) {
	if path == "" {
		path = "/"
	}
	bad := func(format string, args ...any) (Ref, error) {
		return Ref{}, &Error{Path: path, Message: fmt.Sprintf(format, args...)}
	}
	r := Ref{Path: path}
	src, ok := m[Key].(string)
	if !ok || src == "" {
		return bad(`"$file" must be an upload id or an https URL`)
	}
	for k, v := range m {
		switch k {
		case Key:
		case "size":
			n, ok := v.(json.Number)
			size, err := n.Int64()
			if !ok || err != nil || size < 0 {
				return bad(`"size" must be a whole number of bytes`)
			}
			r.Size = size
		case "sha256":
			s, ok := v.(string)
			if !ok || !ValidSHA256(s) {
				return bad(`"sha256" must be 64 lowercase hex digits`)
			}
			r.SHA256 = s
		default:
			return bad(`a file reference has only "$file", "size" and "sha256", not %q`, k)
		}
	}
	switch {
	case strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://"):
		r.URL = src
	case ValidUploadID(src):
		r.Upload = src
	default:
		return bad(`"$file" %q is neither an upload id nor an https URL`, src)
	}
	return r, nil
}

// Canonical is a resolved reference as stored in a job's input.
func Canonical(src string, size int64, sum string) map[string]any {
	m := map[string]any{Key: src}
	if size > 0 || sum != "" {
		m["size"] = size
	}
	if sum != "" {
		m["sha256"] = sum
	}
	return m
}

// Local is what the algorithm sees in place of a reference: the fetched
// file.
type Local struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ErrMismatch is matched by a fetched file whose size or SHA-256 is not the
// one its reference says.
var ErrMismatch = errors.New("input file does not match its reference")

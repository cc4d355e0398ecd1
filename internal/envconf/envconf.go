// Package envconf is the one way aigw's binaries read their configuration:
// typed getters over the environment (and, for values that may be secret, the
// OpenFaaS secrets directory), every error named by its variable and joined,
// and every variable read recorded so that a test can hold the README's
// configuration table against what the binaries actually read.
//
// A getter returns its default when the variable is unset or blank, and when
// the value is bad (the error is kept for Err): a bad value never silently
// becomes the default, because Err is not nil.
package envconf

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed values and collects their errors. The zero value is not
// usable; build one with New or FromGetenv.
type Reader struct {
	lookup     func(string) (string, bool)
	secretsDir string
	errs       []error
	vars       map[string]bool
	secrets    map[string]bool
}

// New reads through lookup (os.LookupEnv, or a map's lookup in tests).
func New(lookup func(string) (string, bool)) *Reader {
	return &Reader{lookup: lookup, vars: map[string]bool{}, secrets: map[string]bool{}}
}

// FromGetenv reads through getenv (os.Getenv, or a map in tests); unset and
// empty are the same.
func FromGetenv(getenv func(string) string) *Reader {
	return New(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// Map reads from m (tests).
func Map(m map[string]string) *Reader {
	return New(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// SetSecretsDir makes Secret look for files in dir first ("" turns secret
// files off: values come from the environment only).
func (r *Reader) SetSecretsDir(dir string) { r.secretsDir = dir }

// Err is every error so far, joined; nil when all values were good.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Vars lists the variables read so far, sorted.
func (r *Reader) Vars() []string { return sorted(r.vars) }

// SecretNames lists the secret files read so far, sorted.
func (r *Reader) SecretNames() []string { return sorted(r.secrets) }

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Failf records an error about the variable name: "NAME=value: msg" when it
// is set, "NAME msg" when not.
func (r *Reader) Failf(name, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if v, ok := r.raw(name); ok {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: %s", name, v, msg))
		return
	}
	r.errs = append(r.errs, fmt.Errorf("%s %s", name, msg))
}

// Lookup returns the variable's value trimmed of white space and whether it
// is set to something other than blanks.
func (r *Reader) Lookup(name string) (string, bool) {
	v, ok := r.raw(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// LookupRaw is Lookup, but a variable set to "" counts as set (for settings
// whose empty value means off).
func (r *Reader) LookupRaw(name string) (string, bool) {
	v, ok := r.raw(name)
	return strings.TrimSpace(v), ok
}

func (r *Reader) raw(name string) (string, bool) {
	r.vars[name] = true
	return r.lookup(name)
}

// String is the variable's value, or def when unset.
func (r *Reader) String(name, def string) string {
	if v, ok := r.Lookup(name); ok {
		return v
	}
	return def
}

// Required is the variable's value; unset is an error saying what to set
// (hint, e.g. "the pool this worker serves").
func (r *Reader) Required(name, hint string) string {
	v, ok := r.Lookup(name)
	if !ok {
		r.errs = append(r.errs, fmt.Errorf("%s is required: %s", name, hint))
	}
	return v
}

// Int is a whole number from least to most (most 0: no upper bound).
func (r *Reader) Int(name string, def, least, most int) int {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least || (most != 0 && n > most) {
		r.Failf(name, "want a whole number %s", bounds(strconv.Itoa(least), strconv.Itoa(most), most != 0))
		return def
	}
	return n
}

// Int64 is Int for 64-bit values.
func (r *Reader) Int64(name string, def, least, most int64) int64 {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < least || (most != 0 && n > most) {
		r.Failf(name, "want a whole number %s", bounds(strconv.FormatInt(least, 10), strconv.FormatInt(most, 10), most != 0))
		return def
	}
	return n
}

// Float is a number from least to most.
func (r *Reader) Float(name string, def, least, most float64) float64 {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < least || f > most {
		r.Failf(name, "want a number from %g to %g", least, most)
		return def
	}
	return f
}

func bounds(least, most string, hasMost bool) string {
	if hasMost {
		return "from " + least + " to " + most
	}
	return "of at least " + least
}

// Positive is the least duration of settings that must be above zero.
const Positive = time.Nanosecond

// Duration is a Go duration (30s, 1m30s) of at least least (0: zero allowed;
// Positive: above zero) and at most most (0: no upper bound).
func (r *Reader) Duration(name string, def, least, most time.Duration) time.Duration {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err == nil && d >= least && (most == 0 || d <= most) {
		return d
	}
	var want string
	switch {
	case least == Positive:
		want = "a positive duration"
	case least == 0:
		want = "a duration of 0 or more"
	default:
		want = "a duration of at least " + least.String()
	}
	if most != 0 {
		want += " and at most " + most.String()
	}
	r.Failf(name, "want %s, such as 30s", want)
	return def
}

// Bool is true or false (also 1/0, yes/no, any case); anything else is an
// error, never false.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	}
	r.Failf(name, "want true or false")
	return def
}

// List is a comma- or space-separated list, blanks dropped; nil when unset.
func (r *Reader) List(name string) []string {
	v, ok := r.Lookup(name)
	if !ok {
		return nil
	}
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' })
}

// URL is an absolute http or https URL with a host, or def when unset.
func (r *Reader) URL(name, def string) string {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.Failf(name, "want an http(s) URL such as https://auth.example.com/.well-known/jwks.json")
		return def
	}
	return v
}

// Parse reads the variable with parse; its error is recorded named by the
// variable. Unset gives def.
func Parse[T any](r *Reader, name string, def T, parse func(string) (T, error)) T {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	t, err := parse(v)
	if err != nil {
		r.Failf(name, "%v", err)
		return def
	}
	return t
}

// Secret is the value of the secret file secret in the secrets directory
// (trimmed), else of the variable env ("" for none): one rule for every
// binary. A secret file that exists but cannot be read is an error.
func (r *Reader) Secret(secret, env string) string {
	if v, ok := r.secretFile(secret); ok {
		return v
	}
	if env == "" {
		return ""
	}
	return r.String(env, "")
}

// RequiredSecret is Secret, but neither a file nor the variable is an error
// saying how to provide it.
func (r *Reader) RequiredSecret(secret, env string) string {
	v := r.Secret(secret, env)
	if v != "" {
		return v
	}
	switch {
	case r.secretsDir != "" && env != "":
		r.errs = append(r.errs, fmt.Errorf("missing secret %s (a file in %s) or %s", secret, r.secretsDir, env))
	case r.secretsDir != "":
		r.errs = append(r.errs, fmt.Errorf("missing secret %s (a file in %s)", secret, r.secretsDir))
	default:
		r.errs = append(r.errs, fmt.Errorf("%s is required (%s)", env, secret))
	}
	return ""
}

func (r *Reader) secretFile(secret string) (string, bool) {
	r.secrets[secret] = true
	if r.secretsDir == "" {
		return "", false
	}
	if secret == "" || strings.ContainsAny(secret, `/\`) || secret == "." || secret == ".." {
		r.errs = append(r.errs, fmt.Errorf("invalid secret name %q", secret))
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(r.secretsDir, secret))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("secret %s: %w", secret, err))
		return "", false
	}
	v := strings.TrimSpace(string(b))
	return v, v != ""
}

// Fail records err, which must name what to fix (e.g. a secret that does not
// parse).
func (r *Reader) Fail(err error) { r.errs = append(r.errs, err) }

// ParseNamed is Parse for a parser whose errors already name the variable
// (such as egress.ParseAllowedNets): they are recorded as they are.
func ParseNamed[T any](r *Reader, name string, def T, parse func(string) (T, error)) T {
	v, ok := r.Lookup(name)
	if !ok {
		return def
	}
	t, err := parse(v)
	if err != nil {
		r.Fail(err)
		return def
	}
	return t
}

package algorithm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testenv"
)

const echoYAML = `
name: echo
version: 1.0.0
pool: cpu
runtime: {type: exec, command: [aigw-echo]}
timeout_ms: 30000
max_retries: 1
input_schema:
  type: object
  required: [message]
  properties:
    message: {type: string}
    sleep_ms: {type: integer, minimum: 0}
`

func TestParseValidatesAndCompilesSchema(t *testing.T) {
	d, err := Parse([]byte(echoYAML))
	if err != nil {
		t.Fatal(err)
	}
	if d.Timeout() != 30*time.Second || d.Retries() != 1 || d.Runtime.Command[0] != "aigw-echo" {
		t.Fatalf("parsed %+v", d)
	}
	sch, err := d.CompileSchema()
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(map[string]any{"message": "hi"}); err != nil {
		t.Fatalf("valid input refused: %v", err)
	}
	if err := sch.Validate(map[string]any{"message": 3}); err == nil {
		t.Fatal("message must be a string")
	}
}

func TestBadDefinitionsNameTheField(t *testing.T) {
	cases := map[string]string{
		"name":                        strings.Replace(echoYAML, "name: echo", "name: Echo!", 1),
		"version":                     strings.Replace(echoYAML, "version: 1.0.0", "version: ''", 1),
		"pool":                        strings.Replace(echoYAML, "pool: cpu", "pool: ''", 1),
		"runtime.type":                strings.Replace(echoYAML, "type: exec", "type: docker", 1),
		"command":                     strings.Replace(echoYAML, "command: [aigw-echo]", "command: []", 1),
		"runtime.command[0] absolute": strings.Replace(echoYAML, "command: [aigw-echo]", "command: [/bin/sh, -c, id]", 1),
		"runtime.command[0] dotdot":   strings.Replace(echoYAML, "command: [aigw-echo]", "command: [../bin/sh]", 1),
		"runtime.dir absolute":        strings.Replace(echoYAML, "command: [aigw-echo]", "command: [python3, x.py], dir: /tmp", 1),
		"runtime.dir dotdot":          strings.Replace(echoYAML, "command: [aigw-echo]", "command: [python3, x.py], dir: a/../../tmp", 1),
		"timeout_ms":                  strings.Replace(echoYAML, "timeout_ms: 30000", "timeout_ms: -1", 1),
		"max_retries":                 strings.Replace(echoYAML, "max_retries: 1", "max_retries: 99", 1),
		"input_schema":                strings.Replace(echoYAML, "type: object", "type: 12", 1),
		"unknown field":               echoYAML + "colour: red\n",
	}
	for want, doc := range cases {
		_, err := Parse([]byte(doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), strings.Fields(want)[0]) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestServeRuntime(t *testing.T) {
	serve := strings.Replace(echoYAML, "runtime: {type: exec, command: [aigw-echo]}",
		"runtime: {type: serve, command: [aigw-echo], min_warm: 1, idle_timeout_ms: 60000, max_jobs: 100, setup_timeout_ms: 9000}", 1)
	d, err := Parse([]byte(serve))
	if err != nil {
		t.Fatal(err)
	}
	rt := d.Runtime
	if rt.Type != Serve || rt.MinWarm != 1 || rt.IdleTimeout() != time.Minute || rt.MaxJobs != 100 || rt.SetupTimeout() != 9*time.Second {
		t.Fatalf("parsed %+v", rt)
	}
	if (&Runtime{}).IdleTimeout() != DefaultIdleTimeout || (&Runtime{}).SetupTimeout() != DefaultSetupTimeout {
		t.Fatal("defaults")
	}
	cases := map[string]string{
		"runtime.min_warm":                            strings.Replace(serve, "min_warm: 1", "min_warm: -1", 1),
		"runtime.idle_timeout_ms":                     strings.Replace(serve, "idle_timeout_ms: 60000", "idle_timeout_ms: -5", 1),
		"runtime.max_jobs":                            strings.Replace(serve, "max_jobs: 100", "max_jobs: -1", 1),
		"runtime.setup_timeout_ms":                    strings.Replace(serve, "setup_timeout_ms: 9000", "setup_timeout_ms: 999999999999", 1),
		"runtime.command":                             strings.Replace(serve, "command: [aigw-echo], ", "", 1),
		"runtime.max_jobs is for serve runtimes only": strings.Replace(echoYAML, "command: [aigw-echo]", "command: [aigw-echo], max_jobs: 3", 1),
	}
	for want, doc := range cases {
		_, err := Parse([]byte(doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"0.9", "1.0.0-rc1", "1.0.0", "1.2.0", "1.10.0", "2"}
	for i := 1; i < len(ordered); i++ {
		if CompareVersions(ordered[i-1], ordered[i]) >= 0 || CompareVersions(ordered[i], ordered[i-1]) <= 0 {
			t.Errorf("%s should sort before %s", ordered[i-1], ordered[i])
		}
	}
	if CompareVersions("1.0", "1.0") != 0 {
		t.Error("equal versions")
	}
}

func TestStorePutGetListVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewStore(testenv.MongoDB(t))
	d, _ := Parse([]byte(echoYAML))
	if _, created, err := s.Put(ctx, *d); err != nil || !created {
		t.Fatalf("put: %v %v", created, err)
	}
	d2 := *d
	d2.Version = "1.10.0"
	d2.Description = "newer"
	if _, _, err := s.Put(ctx, d2); err != nil {
		t.Fatal(err)
	}
	d2.Description = "updated"
	if _, created, err := s.Put(ctx, d2); err != nil || created {
		t.Fatalf("update: created=%v %v", created, err)
	}
	latest, err := s.Get(ctx, "echo", "")
	if err != nil || latest.Version != "1.10.0" || latest.Description != "updated" {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	one, err := s.Get(ctx, "echo", "1.0.0")
	if err != nil || one.Version != "1.0.0" || string(one.InputSchema) == "" {
		t.Fatalf("1.0.0: %+v %v", one, err)
	}
	if _, err := s.Get(ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 2 || all[0].Version != "1.0.0" {
		t.Fatalf("list: %+v %v", all, err)
	}
	bad := *d
	bad.Pool = ""
	if _, _, err := s.Put(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid put: %v", err)
	}
}

type countingSource struct {
	n   int
	def *Definition
	err error
}

func (s *countingSource) Get(context.Context, string, string) (*Definition, error) {
	s.n++
	return s.def, s.err
}

func TestCacheKeepsDefinitionsForTheTTL(t *testing.T) {
	d, _ := Parse([]byte(echoYAML))
	src := &countingSource{def: d}
	c := NewCache(src, time.Minute)
	now := time.Now()
	c.now = func() time.Time { return now }
	for range 3 {
		if got, err := c.Get(context.Background(), "echo", ""); err != nil || got != d {
			t.Fatalf("get: %v %v", got, err)
		}
	}
	if src.n != 1 {
		t.Fatalf("source read %d times within the TTL, want 1", src.n)
	}
	if _, err := c.Get(context.Background(), "echo", "1.0.0"); err != nil || src.n != 2 {
		t.Fatalf("another version is another key: reads %d, %v", src.n, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.Get(context.Background(), "echo", ""); err != nil || src.n != 3 {
		t.Fatalf("after the TTL: reads %d, %v", src.n, err)
	}
	src.err = ErrNotFound
	src.def = nil
	c2 := NewCache(src, time.Minute)
	for range 2 {
		if _, err := c2.Get(context.Background(), "gone", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	}
	if src.n != 5 {
		t.Fatalf("failed lookups must not be cached: reads %d", src.n)
	}
}

func TestCheckProgramAllowsOnlyTheWorkersDirectories(t *testing.T) {
	for _, ok := range []string{"aigw-echo", "python3", "matmul/run.sh", "./progress", "a/./b"} {
		if err := CheckProgram(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"/bin/sh", "/usr/bin/python3", "..", "../x", "a/../../x", ".", ""} {
		if err := CheckProgram(bad); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%q: got %v, want ErrNotAllowed", bad, err)
		}
	}
	for _, bad := range []string{"/tmp", "..", "a/../.."} {
		if err := CheckDir(bad); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("dir %q: got %v, want ErrNotAllowed", bad, err)
		}
	}
	if err := CheckDir(""); err != nil {
		t.Errorf("empty dir: %v", err)
	}
}

// A cache lists through its store (the worker keeps min_warm processes of
// what it lists); a source that cannot list says so.
func TestCacheLists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewStore(testenv.MongoDB(t))
	d, _ := Parse([]byte(echoYAML))
	if _, _, err := s.Put(ctx, *d); err != nil {
		t.Fatal(err)
	}
	defs, err := NewCache(s, time.Second).List(ctx)
	if err != nil || len(defs) != 1 || defs[0].Name != "echo" {
		t.Fatalf("list: %+v %v", defs, err)
	}
	if _, err := NewCache(NewCache(s, 0), 0).List(ctx); err != nil {
		t.Fatalf("a cache of a cache: %v", err)
	}
	if _, err := NewCache(getOnly{}, 0).List(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a source without List: %v", err)
	}
}

type getOnly struct{}

func (getOnly) Get(context.Context, string, string) (*Definition, error) { return nil, ErrNotFound }

// Package algorithm holds algorithm definitions: what runs a job (runtime,
// command or URL), where (pool, resources), for how long, how often it is
// retried and what input it accepts (a JSON Schema). Definitions live in
// MongoDB and can be loaded from definition files (YAML or JSON) kept in the
// repository next to each algorithm.
package algorithm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/aigw/aigw/internal/queue"
)

// Runtime types.
const (
	Exec = "exec"
	HTTP = "http"
	// Serve is a warm process that does its set-up once and then runs job
	// after job (docs/serve-protocol.md).
	Serve = "serve"
)

// Defaults for a definition that leaves them out.
const (
	DefaultTimeout    = 10 * time.Minute
	DefaultMaxRetries = 2
	MaxTimeout        = 7 * 24 * time.Hour
	MaxRetriesLimit   = 20

	// Serve runtimes (docs/serve-protocol.md).
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultSetupTimeout = 5 * time.Minute
	MaxSetupTimeout     = 24 * time.Hour
	MaxIdleTimeout      = 7 * 24 * time.Hour
	MaxMinWarm          = 64
)

// ErrInvalid marks a definition that breaks a rule; the message says which.
var ErrInvalid = errors.New("invalid algorithm definition")

// Definition is one version of an algorithm.
type Definition struct {
	Name        string `json:"name" bson:"name"`
	Version     string `json:"version" bson:"version"`
	Description string `json:"description,omitempty" bson:"description,omitempty"`
	// Pool is the worker pool that runs it.
	Pool      string    `json:"pool" bson:"pool"`
	Runtime   Runtime   `json:"runtime" bson:"runtime"`
	Resources Resources `json:"resources" bson:"resources"`
	// TimeoutMS bounds one attempt (default 10 min); a job may ask for less or more.
	TimeoutMS int64 `json:"timeout_ms,omitempty" bson:"timeout_ms,omitempty"`
	// MaxRetries is the default number of automatic retries after a failed attempt.
	MaxRetries *int `json:"max_retries,omitempty" bson:"max_retries,omitempty"`
	// Env is added to the environment of an exec run.
	Env map[string]string `json:"env,omitempty" bson:"env,omitempty"`
	// Limits hold the algorithm's own limits, over the worker's defaults.
	Limits Limits `json:"limits,omitzero" bson:"limits,omitempty"`
	// Assets are files every run needs (model weights, datasets): a worker
	// downloads each once into its content-addressed cache and shares it,
	// read-only, with every run (AIGW_ASSET_<NAME> is its path).
	Assets []Asset `json:"assets,omitempty" bson:"assets,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12 unless $schema says otherwise)
	// that every job's input must satisfy.
	InputSchema json.RawMessage `json:"input_schema,omitempty" bson:"input_schema,omitempty"`

	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// Asset is a file an algorithm needs, named by its content.
type Asset struct {
	// Name is how the run finds it: AIGW_ASSET_<NAME> (upper case, '-' and
	// '.' as '_'); letters, digits, '_', '-', '.'.
	Name string `json:"name" bson:"name"`
	// URL is where a worker downloads it (http or https).
	URL string `json:"url" bson:"url"`
	// SHA256 (hex) and Size (bytes) are what the download must be.
	SHA256 string `json:"sha256" bson:"sha256"`
	Size   int64  `json:"size" bson:"size"`
}

// AssetEnv is the variable that holds an asset's path in a run.
func AssetEnv(name string) string {
	return "AIGW_ASSET_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

var (
	assetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (d *Definition) validateAssets(bad func(string, ...any) error) error {
	seen := map[string]bool{}
	for i, a := range d.Assets {
		switch {
		case !assetNameRE.MatchString(a.Name):
			return bad("assets[%d].name %q: use 1-64 letters, digits, '_', '-' or '.'", i, a.Name)
		case seen[AssetEnv(a.Name)]:
			return bad("assets[%d].name %q: two assets would share %s", i, a.Name, AssetEnv(a.Name))
		case !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://"):
			return bad("assets[%d].url %q: want an http(s) URL", i, a.URL)
		case !sha256RE.MatchString(a.SHA256):
			return bad("assets[%d].sha256: want 64 lowercase hex digits", i)
		case a.Size <= 0:
			return bad("assets[%d].size: want the file's size in bytes", i)
		}
		seen[AssetEnv(a.Name)] = true
	}
	return nil
}

// MaxArtifactBytes is the most limits.artifact_bytes may be (1 TiB).
const MaxArtifactBytes = 1 << 40

// Limits are an algorithm's own limits; zero means the worker's default.
type Limits struct {
	// ArtifactBytes caps the total size of one run's output files
	// (default: the worker's AIGW_ARTIFACT_LIMIT).
	ArtifactBytes int64 `json:"artifact_bytes,omitempty" bson:"artifact_bytes,omitempty"`
}

// Runtime says how a worker runs the algorithm.
type Runtime struct {
	// Type is "exec", "serve" or "http".
	Type string `json:"type" bson:"type"`
	// Command (exec, serve) is the program and its arguments. The program is found
	// only where the worker's operator put it (see CheckProgram): a path with
	// a "/" inside the worker's algorithms directory (e.g. matmul/run.sh), or
	// a bare name in its bin directory (e.g. aigw-echo), else one of the
	// interpreters its operator allows (AIGW_INTERPRETERS, e.g. python3).
	Command []string `json:"command,omitempty" bson:"command,omitempty"`
	// Dir (exec, serve) is the working directory, inside the algorithms directory.
	Dir string `json:"dir,omitempty" bson:"dir,omitempty"`
	// URL (http) receives the input as a POST: an Open Inference Protocol v2
	// /v2/models/{m}/infer endpoint or any JSON endpoint on the node.
	URL string `json:"url,omitempty" bson:"url,omitempty"`
	// Protocol (http) is "json" (input posted as is, default) or "v2" (Open
	// Inference Protocol: input wrapped in / output taken from the tensors).
	Protocol string `json:"protocol,omitempty" bson:"protocol,omitempty"`

	// MinWarm (serve) is how many ready processes a worker keeps even with no
	// jobs (0: scale to zero).
	MinWarm int `json:"min_warm,omitempty" bson:"min_warm,omitempty"`
	// IdleTimeoutMS (serve) stops an idle process beyond MinWarm after this
	// long (default 5 min).
	IdleTimeoutMS int64 `json:"idle_timeout_ms,omitempty" bson:"idle_timeout_ms,omitempty"`
	// MaxJobs (serve) recycles a process after this many jobs (0: no limit).
	MaxJobs int `json:"max_jobs,omitempty" bson:"max_jobs,omitempty"`
	// SetupTimeoutMS (serve) is the longest a process's set-up may take
	// (default 5 min).
	SetupTimeoutMS int64 `json:"setup_timeout_ms,omitempty" bson:"setup_timeout_ms,omitempty"`
}

// IdleTimeout is how long an idle serve process beyond MinWarm lives.
func (r *Runtime) IdleTimeout() time.Duration {
	if r.IdleTimeoutMS <= 0 {
		return DefaultIdleTimeout
	}
	return time.Duration(r.IdleTimeoutMS) * time.Millisecond
}

// SetupTimeout is the longest a serve process's set-up may take.
func (r *Runtime) SetupTimeout() time.Duration {
	if r.SetupTimeoutMS <= 0 {
		return DefaultSetupTimeout
	}
	return time.Duration(r.SetupTimeoutMS) * time.Millisecond
}

// Resources is what one run (one gang member) needs on a node.
type Resources struct {
	GPUs     int `json:"gpus,omitempty" bson:"gpus,omitempty"`
	MemoryMB int `json:"memory_mb,omitempty" bson:"memory_mb,omitempty"`
}

// Timeout returns the attempt timeout.
func (d *Definition) Timeout() time.Duration {
	if d.TimeoutMS <= 0 {
		return DefaultTimeout
	}
	return time.Duration(d.TimeoutMS) * time.Millisecond
}

// Retries returns the default retry count.
func (d *Definition) Retries() int {
	if d.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *d.MaxRetries
}

// ID is the stored document id: name@version.
func (d *Definition) ID() string { return d.Name + "@" + d.Version }

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$`)
	envRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName reports whether name is a valid algorithm name (DNS label).
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Validate checks every rule and compiles the input schema; the error names
// the field to fix and wraps ErrInvalid.
func (d *Definition) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case !ValidName(d.Name):
		return bad("name %q: use 1-63 lowercase letters, digits and dashes", d.Name)
	case !versionRE.MatchString(d.Version):
		return bad("version %q: use a version such as 1.0.0", d.Version)
	case d.Pool == "":
		return bad("pool is required")
	}
	if err := queue.ValidatePool(d.Pool); err != nil {
		return bad("pool: %v", err)
	}
	if err := d.validateRuntime(bad); err != nil {
		return err
	}
	switch {
	case d.Resources.GPUs < 0 || d.Resources.GPUs > 64:
		return bad("resources.gpus must be 0-64")
	case d.Resources.MemoryMB < 0:
		return bad("resources.memory_mb must not be negative")
	case d.TimeoutMS < 0 || time.Duration(d.TimeoutMS)*time.Millisecond > MaxTimeout:
		return bad("timeout_ms must be between 0 (default %s) and %d", DefaultTimeout, MaxTimeout.Milliseconds())
	case d.MaxRetries != nil && (*d.MaxRetries < 0 || *d.MaxRetries > MaxRetriesLimit):
		return bad("max_retries must be 0-%d", MaxRetriesLimit)
	case d.Limits.ArtifactBytes < 0 || d.Limits.ArtifactBytes > MaxArtifactBytes:
		return bad("limits.artifact_bytes must be 0 (the worker's default) to %d", int64(MaxArtifactBytes))
	}
	if err := d.validateAssets(bad); err != nil {
		return err
	}
	for k := range d.Env {
		if !envRE.MatchString(k) || strings.HasPrefix(k, "AIGW_") {
			return bad("env %q: want a variable name not starting with AIGW_", k)
		}
	}
	if len(d.InputSchema) > 0 {
		if _, err := d.CompileSchema(); err != nil {
			return bad("input_schema: %v", err)
		}
	}
	return nil
}

// validateRuntime checks the runtime fields of the definition's type.
func (d *Definition) validateRuntime(bad func(string, ...any) error) error {
	rt := &d.Runtime
	switch rt.Type {
	case Exec, Serve:
		if len(rt.Command) == 0 || rt.Command[0] == "" {
			return bad("runtime.command is required for an %s runtime", rt.Type)
		}
		if err := CheckProgram(rt.Command[0]); err != nil {
			return bad("runtime.command[0]: %v", err)
		}
		if err := CheckDir(rt.Dir); err != nil {
			return bad("runtime.dir: %v", err)
		}
		if rt.URL != "" {
			return bad("runtime.url is for http runtimes only")
		}
	case HTTP:
		if !strings.HasPrefix(rt.URL, "http://") && !strings.HasPrefix(rt.URL, "https://") {
			return bad("runtime.url %q: want an http:// or https:// URL", rt.URL)
		}
		if p := rt.Protocol; p != "" && p != "json" && p != "v2" {
			return bad("runtime.protocol %q: want json or v2", p)
		}
	default:
		return bad("runtime.type %q: want exec, serve or http", rt.Type)
	}
	if rt.Type != Serve {
		for _, f := range []struct {
			name string
			set  bool
		}{{"min_warm", rt.MinWarm != 0}, {"idle_timeout_ms", rt.IdleTimeoutMS != 0},
			{"max_jobs", rt.MaxJobs != 0}, {"setup_timeout_ms", rt.SetupTimeoutMS != 0}} {
			if f.set {
				return bad("runtime.%s is for serve runtimes only", f.name)
			}
		}
		return nil
	}
	switch {
	case rt.MinWarm < 0 || rt.MinWarm > MaxMinWarm:
		return bad("runtime.min_warm must be 0-%d", MaxMinWarm)
	case rt.IdleTimeoutMS < 0 || time.Duration(rt.IdleTimeoutMS)*time.Millisecond > MaxIdleTimeout:
		return bad("runtime.idle_timeout_ms must be between 0 (default %s) and %d", DefaultIdleTimeout, MaxIdleTimeout.Milliseconds())
	case rt.MaxJobs < 0:
		return bad("runtime.max_jobs must not be negative (0: no limit)")
	case rt.SetupTimeoutMS < 0 || time.Duration(rt.SetupTimeoutMS)*time.Millisecond > MaxSetupTimeout:
		return bad("runtime.setup_timeout_ms must be between 0 (default %s) and %d", DefaultSetupTimeout, MaxSetupTimeout.Milliseconds())
	}
	return nil
}

// ErrNotAllowed marks an exec program or directory outside the places a
// worker's operator controls.
var ErrNotAllowed = errors.New("not allowed")

// CheckProgram checks the program of an exec command: a bare name (found in
// the worker's bin directory or among its allowed interpreters) or a relative
// path inside the algorithms directory. Absolute paths and ".." are refused,
// so what runs on a node is always something its operator installed there.
func CheckProgram(name string) error {
	switch {
	case filepath.IsAbs(name):
		return fmt.Errorf("%w: %q is an absolute path; name a program in the worker's bin directory (e.g. aigw-echo), an allowed interpreter (e.g. python3) or a path inside its algorithms directory (e.g. matmul/run.sh)", ErrNotAllowed, name)
	case !filepath.IsLocal(name) || name == ".":
		return fmt.Errorf("%w: %q leaves the worker's algorithms directory; use a path inside it without \"..\"", ErrNotAllowed, name)
	}
	return nil
}

// CheckDir checks the working directory of an exec runtime: empty (a fresh
// run directory) or a relative path inside the algorithms directory.
func CheckDir(dir string) error {
	if dir != "" && !filepath.IsLocal(dir) {
		return fmt.Errorf("%w: %q is not inside the worker's algorithms directory; use a relative path without \"..\"", ErrNotAllowed, dir)
	}
	return nil
}

// CompileSchema compiles the input schema; nil means every input is accepted.
func (d *Definition) CompileSchema() (*jsonschema.Schema, error) {
	if len(d.InputSchema) == 0 {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.InputSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	url := "aigw:///algorithms/" + d.Name + "/" + d.Version + "/input.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// Parse decodes a definition from YAML or JSON (JSON is YAML), with the JSON
// field names; unknown fields are errors.
func Parse(data []byte) (*Definition, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &d, d.Validate()
}

// LoadFile reads and validates a definition file.
func LoadFile(path string) (*Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// DefinitionFile is the name of a definition file inside an algorithm's folder.
const DefinitionFile = "algorithm.yaml"

// LoadDir loads dir/*/algorithm.yaml, sorted by path.
func LoadDir(dir string) ([]*Definition, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", DefinitionFile))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no %s under %s", DefinitionFile, dir)
	}
	out := make([]*Definition, 0, len(paths))
	for _, p := range paths {
		d, err := LoadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// CompareVersions orders versions: dotted numeric parts compare as numbers,
// anything else as strings; a pre-release (1.0.0-rc1) sorts before its release.
func CompareVersions(a, b string) int {
	ac, ap, _ := strings.Cut(a, "-")
	bc, bp, _ := strings.Cut(b, "-")
	as, bs := strings.Split(ac, "."), strings.Split(bc, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xn, xerr := strconv.Atoi(x)
		yn, yerr := strconv.Atoi(y)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				return cmp.Compare(xn, yn)
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	switch {
	case ap == bp:
		return 0
	case ap == "":
		return 1
	case bp == "":
		return -1
	}
	return strings.Compare(ap, bp)
}

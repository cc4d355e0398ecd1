// Package matmul_test runs the matmul reference algorithm (matmul.py) the way
// a worker does: /usr/bin/python3 in this folder, no GPU visible, as an exec
// program (input on stdin) and under the warm runtime (AIGW_SERVE=1, job
// after job in one process). It skips where torch is not installed, except
// in CI.
package matmul_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/algorithms/internal/algotest"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/sdk/serve/servetest"
)

const python = "/usr/bin/python3"

type output struct {
	Device             string    `json:"device"`
	Torch              string    `json:"torch"`
	DType              string    `json:"dtype"`
	Size               int       `json:"size"`
	Batch              int       `json:"batch"`
	Iterations         int       `json:"iterations"`
	Seed               int64     `json:"seed"`
	GFLOPS             float64   `json:"gflops"`
	Seconds            float64   `json:"seconds"`
	Checksum           float64   `json:"checksum"`
	CUDAVisibleDevices *string   `json:"cuda_visible_devices"`
	Threads            int       `json:"threads"`
	Note               string    `json:"note"`
	BatchChecksums     []float64 `json:"batch_checksums"`
}

// needTorch skips the test where /usr/bin/python3 cannot import torch, or
// fails it in CI, where nothing may silently skip.
func needTorch(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import torch").CombinedOutput()
	if err == nil {
		return
	}
	msg := "PyTorch is not importable by " + python + " (" + strings.TrimSpace(lastLine(out)) + ", " + err.Error() + "): run scripts/python-torch.sh"
	if testenv.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndex(s, "\n")+1:]
}

// command is matmul.py as the worker starts it, with no GPU visible.
func command() *exec.Cmd {
	cmd := exec.Command(python, "matmul.py")
	cmd.Dir = "." // the definition's dir: matmul
	cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES=", "PYTHONDONTWRITEBYTECODE=1", "AIGW_SERVE=")
	return cmd
}

// run runs matmul.py as the exec runtime would, with no GPU visible and an output
// directory; it returns stdout, stderr and the exit code.
func run(t *testing.T, input, outDir string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command()
	if outDir != "" {
		cmd.Env = append(cmd.Env, "AIGW_OUTPUT_DIR="+outDir)
	}
	cmd.Stdin = strings.NewReader(input)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", python, err)
	}
	return o.String(), e.String(), code
}

func decode(t *testing.T, s string) output {
	t.Helper()
	var out output
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("output %q: %v", s, err)
	}
	return out
}

// runOK runs input as an exec program and checks the run.
func runOK(t *testing.T, input string) output {
	t.Helper()
	dir := t.TempDir()
	stdout, stderr, code := run(t, input, dir)
	if code != 0 {
		t.Fatalf("%s: exit %d, stderr:\n%s", input, code, stderr)
	}
	algotest.CheckProgress(t, stderr)
	return checkOutput(t, stdout, dir)
}

// serveOK runs input on the warm process p and checks the job.
func serveOK(t *testing.T, p *servetest.Process, input string) output {
	t.Helper()
	res := p.Run(t, json.RawMessage(input))
	if res.Error != nil {
		t.Fatalf("%s: %+v", input, res.Error)
	}
	if n := len(res.Progress); n < 2 || *res.Progress[n-1].Progress != 1 {
		t.Fatalf("%s: progress %+v, want two at least, the last at 1", input, res.Progress)
	}
	return checkOutput(t, string(res.Output), res.OutputDir)
}

// checkOutput decodes the output and checks the artifact in dir against it.
func checkOutput(t *testing.T, stdout, dir string) output {
	t.Helper()
	out := decode(t, stdout)
	if out.BatchChecksums != nil {
		t.Fatalf("output carries batch_checksums: %s", stdout)
	}
	// The artifact: the output plus a checksum per matrix, summing to the checksum.
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatalf("artifact: %v", err)
	}
	art := decode(t, string(b))
	if len(art.BatchChecksums) != out.Batch {
		t.Fatalf("artifact has %d batch checksums, want %d", len(art.BatchChecksums), out.Batch)
	}
	sum := 0.0
	for _, c := range art.BatchChecksums {
		sum += c
	}
	if math.Abs(sum-out.Checksum) > 1e-9*math.Max(1, math.Abs(sum)) {
		t.Errorf("batch checksums sum to %v, checksum %v", sum, out.Checksum)
	}
	art.BatchChecksums = nil
	if !reflect.DeepEqual(art, out) {
		t.Errorf("artifact %+v differs from output %+v", art, out)
	}
	return out
}

func TestMatmulCPU(t *testing.T) {
	needTorch(t)
	in := `{"size": 48, "batch": 3, "iterations": 4, "seed": 7}`
	a := runOK(t, in) // exec: a process for the job
	if a.Device != "cpu" || a.DType != "float32" || a.Note != "" {
		t.Errorf("device %q dtype %q note %q, want cpu float32 and no note", a.Device, a.DType, a.Note)
	}
	if a.Size != 48 || a.Batch != 3 || a.Iterations != 4 || a.Seed != 7 {
		t.Errorf("echoed settings %+v", a)
	}
	if a.CUDAVisibleDevices == nil || *a.CUDAVisibleDevices != "" {
		t.Errorf("cuda_visible_devices %v, want the empty string it was given", a.CUDAVisibleDevices)
	}
	if !strings.HasPrefix(a.Torch, "1.") && !strings.HasPrefix(a.Torch, "2.") {
		t.Errorf("torch version %q", a.Torch)
	}
	if a.Seconds <= 0 || a.GFLOPS <= 0 || a.Threads < 1 {
		t.Errorf("seconds %v gflops %v threads %d", a.Seconds, a.GFLOPS, a.Threads)
	}
	// The measured rate is the work done over the time taken.
	if want := 2 * 3 * math.Pow(48, 3) * 4 / a.Seconds / 1e9; math.Abs(a.GFLOPS-want) > 0.01*want+0.001 {
		t.Errorf("gflops %v, want 2·b·n³·i/seconds = %v", a.GFLOPS, want)
	}
	// Each step keeps every matrix at Frobenius norm √n, so the entries are
	// about 1/√n and their sum is far below n²; a NaN or a blow-up fails here.
	if math.IsNaN(a.Checksum) || math.Abs(a.Checksum) > 48*48*3 || a.Checksum == 0 {
		t.Errorf("checksum %v", a.Checksum)
	}

	// The rest on one warm process: the same input gives the same numbers.
	p := servetest.Start(t, command())
	b := serveOK(t, p, in)
	if b.Checksum != a.Checksum {
		t.Errorf("same seed, checksums %v (exec) and %v (warm)", a.Checksum, b.Checksum)
	}
	c := serveOK(t, p, `{"size": 48, "batch": 3, "iterations": 4, "seed": 8}`)
	if c.Checksum == a.Checksum {
		t.Errorf("seeds 7 and 8 both gave checksum %v", a.Checksum)
	}

	// float16 without a GPU runs in float32 and says so; the numbers are those
	// of float32.
	h := serveOK(t, p, `{"size": 48, "batch": 3, "iterations": 4, "seed": 7, "dtype": "float16"}`)
	if h.DType != "float32" || !strings.Contains(h.Note, "float16 requested") || h.Checksum != a.Checksum {
		t.Errorf("float16 on the CPU: dtype %q note %q checksum %v (float32: %v)", h.DType, h.Note, h.Checksum, a.Checksum)
	}

	// Defaults: batch 1, 10 iterations, seed 0.
	d := serveOK(t, p, `{"size": 8}`)
	if d.Batch != 1 || d.Iterations != 10 || d.Seed != 0 {
		t.Errorf("defaults %+v", d)
	}
	if again := serveOK(t, p, in); again.Checksum != a.Checksum {
		t.Errorf("same seed on the same warm process, checksums %v and %v", a.Checksum, again.Checksum)
	}
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
	// One set-up (torch imported once) for all those jobs.
	if n := strings.Count(p.Stderr(), "aigw serve: ready after"); n != 1 {
		t.Errorf("%d set-ups for 5 jobs; stderr:\n%s", n, p.Stderr())
	}
}

// TestMatmulServeCancel: a cancel stops a long run at its next iteration, and
// the process goes on.
func TestMatmulServeCancel(t *testing.T) {
	needTorch(t)
	p := servetest.Start(t, command())
	id, _ := p.Submit(t, map[string]any{"size": 256, "batch": 4, "iterations": MaxIterations})
	if m := p.Next(t); m.Type != "progress" || m.ID != id || *m.Progress != 0 {
		t.Fatalf("message %+v, want the first progress", m)
	}
	start := time.Now()
	p.Cancel(t, id)
	res := p.Collect(t, id)
	if res.Error == nil || !strings.HasPrefix(res.Error.Message, "Canceled: canceled after ") {
		t.Fatalf("canceled run: %s %+v", res.Output, res.Error)
	}
	t.Logf("canceled within %s: %s", time.Since(start), res.Error.Message)
	serveOK(t, p, `{"size": 8}`)
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}

const MaxIterations = 100000

func TestMatmulBadInput(t *testing.T) {
	needTorch(t)
	// As an exec program: exit 1, the reason last on stderr, nothing on stdout.
	for _, tc := range []struct{ in, want string }{
		{`nope`, "matmul: input: not a JSON document"},
		{`{"size": 0}`, "matmul: input: size = 0: want 1-16384"},
	} {
		stdout, stderr, code := run(t, tc.in, "")
		if code != 1 || stdout != "" || !strings.HasPrefix(lastLine([]byte(stderr)), tc.want) {
			t.Errorf("%s: exit %d stdout %q stderr %q, want exit 1 and %q", tc.in, code, stdout, stderr, tc.want)
		}
	}
	// On a warm process: an error that is not retried.
	p := servetest.Start(t, command())
	for _, tc := range []struct{ in, want string }{
		{`[1]`, "input: want a JSON object"},
		{`{}`, "input: size is required"},
		{`{"size": 0}`, "input: size = 0: want 1-16384"},
		{`{"size": "8"}`, `input: size must be an integer, got "8"`},
		{`{"size": true}`, "input: size must be an integer, got true"},
		{`{"size": 8.5}`, "input: size must be an integer, got 8.5"},
		{`{"size": 8, "batch": 0}`, "input: batch = 0: want 1-4096"},
		{`{"size": 8, "iterations": 100001}`, "input: iterations = 100001"},
		{`{"size": 8, "seed": -1}`, "input: seed = -1"},
		{`{"size": 8, "dtype": "int8"}`, `input: dtype "int8": want one of float32, float16`},
		{`{"size": 16384, "batch": 2}`, "input: batch × size² = 2 × 16384² = 536870912 elements, at most 268435456"},
		{`{"size": 8, "extra": 1}`, "input: unknown field 'extra'"},
	} {
		res := p.Run(t, json.RawMessage(tc.in))
		if res.Error == nil || res.Error.Retryable || !strings.HasPrefix(res.Error.Message, tc.want) {
			t.Errorf("%s: %s %+v, want a lasting error %q", tc.in, res.Output, res.Error, tc.want)
		}
	}
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}

func TestDefinition(t *testing.T) {
	d, err := algorithm.LoadFile(algorithm.DefinitionFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "matmul" || d.Pool != "gpu" || d.Resources.GPUs != 1 || d.Runtime.Dir != "matmul" ||
		d.Runtime.Type != algorithm.Serve || d.Runtime.MinWarm != 1 ||
		!reflect.DeepEqual(d.Runtime.Command, []string{filepath.Base(python), "matmul.py"}) {
		t.Fatalf("definition %+v", d)
	}
	// The working directory, relative to the algorithms directory, holds the script.
	if _, err := os.Stat(filepath.Join("..", d.Runtime.Dir, d.Runtime.Command[1])); err != nil {
		t.Fatal(err)
	}
	schema, err := d.CompileSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"size": 8}`, true},
		{`{"size": 1024, "batch": 4, "iterations": 20, "dtype": "float16", "seed": 3}`, true},
		{`{}`, false},
		{`{"size": 0}`, false},
		{`{"size": 8, "dtype": "float64"}`, false},
		{`{"size": 8, "seed": -1}`, false},
		{`{"size": 8, "extra": 1}`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); (err == nil) != tc.ok {
			t.Errorf("schema on %s: %v, want ok=%t", tc.in, err, tc.ok)
		}
	}
}

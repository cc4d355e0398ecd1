// Package matmul_test runs the matmul reference algorithm (matmul.py) the way
// a worker does: /usr/bin/python3 in this folder, input on stdin, no GPU
// visible. It skips where torch is not installed, except in CI.
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

	"github.com/aigw/aigw/algorithms/internal/algotest"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testenv"
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

// run runs matmul.py as the worker would, with no GPU visible and an output
// directory; it returns stdout, stderr and the exit code.
func run(t *testing.T, input, outDir string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(python, "matmul.py")
	cmd.Dir = "." // the definition's dir: matmul
	cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES=", "PYTHONDONTWRITEBYTECODE=1")
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

func runOK(t *testing.T, input string) (output, string) {
	t.Helper()
	dir := t.TempDir()
	stdout, stderr, code := run(t, input, dir)
	if code != 0 {
		t.Fatalf("%s: exit %d, stderr:\n%s", input, code, stderr)
	}
	out := decode(t, stdout)
	if out.BatchChecksums != nil {
		t.Fatalf("stdout carries batch_checksums: %s", stdout)
	}
	algotest.CheckProgress(t, stderr)

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
	return out, stderr
}

func TestMatmulCPU(t *testing.T) {
	needTorch(t)
	in := `{"size": 48, "batch": 3, "iterations": 4, "seed": 7}`
	a, _ := runOK(t, in)
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

	b, _ := runOK(t, in)
	if b.Checksum != a.Checksum {
		t.Errorf("same seed, checksums %v and %v", a.Checksum, b.Checksum)
	}
	c, _ := runOK(t, `{"size": 48, "batch": 3, "iterations": 4, "seed": 8}`)
	if c.Checksum == a.Checksum {
		t.Errorf("seeds 7 and 8 both gave checksum %v", a.Checksum)
	}

	// float16 without a GPU runs in float32 and says so; the numbers are those
	// of float32.
	h, _ := runOK(t, `{"size": 48, "batch": 3, "iterations": 4, "seed": 7, "dtype": "float16"}`)
	if h.DType != "float32" || !strings.Contains(h.Note, "float16 requested") || h.Checksum != a.Checksum {
		t.Errorf("float16 on the CPU: dtype %q note %q checksum %v (float32: %v)", h.DType, h.Note, h.Checksum, a.Checksum)
	}

	// Defaults: batch 1, 10 iterations, seed 0.
	d, _ := runOK(t, `{"size": 8}`)
	if d.Batch != 1 || d.Iterations != 10 || d.Seed != 0 {
		t.Errorf("defaults %+v", d)
	}
}

func TestMatmulBadInput(t *testing.T) {
	needTorch(t)
	for _, tc := range []struct{ in, want string }{
		{`nope`, "matmul: input: not a JSON document"},
		{`[1]`, "want a JSON object"},
		{`{}`, "size is required"},
		{`{"size": 0}`, "size = 0: want 1-16384"},
		{`{"size": "8"}`, `size must be an integer, got "8"`},
		{`{"size": true}`, "size must be an integer, got true"},
		{`{"size": 8.5}`, "size must be an integer, got 8.5"},
		{`{"size": 8, "batch": 0}`, "batch = 0: want 1-4096"},
		{`{"size": 8, "iterations": 100001}`, "iterations = 100001"},
		{`{"size": 8, "seed": -1}`, "seed = -1"},
		{`{"size": 8, "dtype": "int8"}`, `dtype "int8": want one of float32, float16`},
		{`{"size": 16384, "batch": 2}`, "batch × size² = 2 × 16384² = 536870912 elements, at most 268435456"},
		{`{"size": 8, "extra": 1}`, "unknown field 'extra'"},
	} {
		stdout, stderr, code := run(t, tc.in, "")
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d stdout %q stderr %q, want exit 1 and %q", tc.in, code, stdout, stderr, tc.want)
		}
	}
}

func TestDefinition(t *testing.T) {
	d, err := algorithm.LoadFile(algorithm.DefinitionFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "matmul" || d.Pool != "gpu" || d.Resources.GPUs != 1 || d.Runtime.Dir != "matmul" ||
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

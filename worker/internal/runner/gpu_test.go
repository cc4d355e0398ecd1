//go:build gpu

// The device check (scripts/gpu-check.sh): built with -tags gpu and run on a
// machine with an NVIDIA GPU, never in CI (which has none). It runs the matmul
// reference algorithm from this repository through the exec runtime exactly
// as a root worker does on a GPU node: the command resolved through
// AIGW_INTERPRETERS, the run dropped to the unprivileged user, one GPU in
// CUDA_VISIBLE_DEVICES.

package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
)

// TestGPUMatmulAsTheUnprivilegedUser: the unprivileged run sees its GPU and
// computes on it; the artifact lands in its output directory.
func TestGPUMatmulAsTheUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run the device check as root, as a worker runs")
	}
	python := os.Getenv("AIGW_GPU_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	// The algorithms directory must be readable by the run's user, as a
	// node's /opt/aigw/algorithms is: the script copies the repository's there.
	algos := os.Getenv("AIGW_GPU_ALGORITHMS")
	if algos == "" {
		t.Fatal("AIGW_GPU_ALGORITHMS: set it to a copy of algorithms/ that uid 65534 can read (scripts/gpu-check.sh run does)")
	}
	def, err := algorithm.LoadFile(filepath.Join(algos, "matmul", "algorithm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	openDirs(t, work)
	r := &Runner{AlgorithmsDir: algos, BinDir: t.TempDir(), WorkDir: work,
		Interpreters: []string{python},
		RunAs:        &Credential{UID: 65534, GID: 65534},
		Limits:       Limits{Output: 1 << 20, LogTail: 4096, KillGrace: 2 * time.Second}}
	for _, in := range []string{
		`{"size": 8192, "batch": 4, "iterations": 20, "dtype": "float16", "seed": 7}`,
		`{"size": 4096, "batch": 8, "iterations": 20, "dtype": "float32", "seed": 7}`,
	} {
		start := time.Now()
		res := r.Run(context.Background(), Spec{JobID: "gpu", Attempt: 1, Input: json.RawMessage(in),
			Timeout: 5 * time.Minute, Def: def, GPUs: []int{0}}, Hooks{})
		wall := time.Since(start)
		if res.Err != nil {
			t.Fatalf("matmul %s: %+v\nlog: %s", in, res.Err, res.Log)
		}
		var out struct {
			Device, DType, Torch string
			GFLOPS, Seconds      float64
			CUDAVisibleDevices   *string `json:"cuda_visible_devices"`
		}
		if err := json.Unmarshal(res.Output, &out); err != nil {
			t.Fatalf("output %s: %v", res.Output, err)
		}
		if !strings.HasPrefix(out.Device, "cuda") || out.CUDAVisibleDevices == nil || *out.CUDAVisibleDevices != "0" {
			t.Errorf("ran on %q with CUDA_VISIBLE_DEVICES %v, want cuda with \"0\"\nlog: %s", out.Device, out.CUDAVisibleDevices, res.Log)
		}
		if _, err := os.Stat(filepath.Join(res.OutputDir, "result.json")); err != nil {
			t.Errorf("artifact: %v", err)
		}
		t.Logf("GPU CHECK matmul as uid 65534: input %s device %q torch %s dtype %s: %.0f GFLOP/s in %.3f s of compute, %.2f s for the whole run (process start, torch import, CUDA init)",
			in, out.Device, out.Torch, out.DType, out.GFLOPS, out.Seconds, wall.Seconds())
		res.RemoveDir()
	}
}

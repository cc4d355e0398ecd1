//go:build gpu

// The device check (scripts/gpu-check.sh): built with -tags gpu and run on a
// machine with an NVIDIA GPU, never in CI (which has none). It runs the matmul
// reference algorithm from this repository on the serve runtime (a warm
// process: torch imported and the GPU initialised once, then job after job)
// exactly as a root worker does on a GPU node: python3 resolved through
// AIGW_INTERPRETERS, the process dropped to the unprivileged user, one GPU in
// CUDA_VISIBLE_DEVICES. With AIGW_GPU_CHECK_CPU=1 it checks the same on a
// machine without a GPU, where matmul falls back to the CPU (no GPU assigned,
// CUDA_VISIBLE_DEVICES empty): the script's CPU mode, runnable anywhere.
//
// It prints its figures as lines "GPU CHECK ...".

package runner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
)

// gpuCheck is the check's setting: the algorithms, the python and whether it
// runs on a GPU or in the CPU fallback.
type gpuCheck struct {
	def     *algorithm.Definition
	algos   string
	python  string
	cpu     bool
	gpus    []int
	visible string // CUDA_VISIBLE_DEVICES every job must see
}

func loadGPUCheck(t *testing.T) gpuCheck {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("run the device check as root, as a worker runs")
	}
	c := gpuCheck{python: os.Getenv("AIGW_GPU_PYTHON"), algos: os.Getenv("AIGW_GPU_ALGORITHMS"),
		cpu: os.Getenv("AIGW_GPU_CHECK_CPU") == "1", gpus: []int{0}, visible: "0"}
	if c.python == "" {
		c.python = "/usr/bin/python3"
	}
	if c.cpu {
		c.gpus, c.visible = nil, ""
	}
	// The algorithms directory must be readable by the run's user, as a
	// node's /opt/aigw/algorithms is: the script copies the repository's there.
	if c.algos == "" {
		t.Fatal("AIGW_GPU_ALGORITHMS: set it to a copy of algorithms/ that uid 65534 can read (scripts/gpu-check.sh run does)")
	}
	def, err := algorithm.LoadFile(filepath.Join(c.algos, "matmul", "algorithm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if def.Runtime.Type != algorithm.Serve {
		t.Fatalf("matmul's runtime is %q, want %q (a warm process)", def.Runtime.Type, algorithm.Serve)
	}
	c.def = def
	return c
}

// runner is a root worker's runtime: python3 allowed, runs as uid 65534.
func (c gpuCheck) runner(t *testing.T) *Runner {
	t.Helper()
	work := t.TempDir()
	openDirs(t, work)
	r := &Runner{AlgorithmsDir: c.algos, BinDir: t.TempDir(), WorkDir: work,
		Interpreters: []string{c.python},
		RunAs:        &Credential{UID: 65534, GID: 65534},
		Limits:       Limits{Output: 1 << 20, LogTail: 4096, KillGrace: 2 * time.Second}}
	t.Cleanup(r.Close)
	return r
}

// matmulOut is the part of matmul's output the check reads.
type matmulOut struct {
	Device, DType, Torch string
	GFLOPS, Seconds      float64
	CUDAVisibleDevices   *string `json:"cuda_visible_devices"`
}

// job runs one job of input on a process acquired for it and returns the
// output, the process's pid, how long the acquire waited for a process to
// start (0: a warm hit) and the job's whole time.
func (c gpuCheck) job(t *testing.T, r *Runner, input string) (out matmulOut, pid int, cold, wall time.Duration, res Result) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	l, err := r.Acquire(ctx, c.def, c.gpus, nil)
	if err != nil {
		t.Fatalf("acquire a matmul process: %v", err)
	}
	pid, cold = l.PID(), l.Cold
	res = r.Run(ctx, Spec{JobID: "gpu", Attempt: 1, Input: json.RawMessage(input), Timeout: 5 * time.Minute,
		Def: c.def, GPUs: c.gpus, Lease: l}, Hooks{})
	wall = time.Since(start)
	if res.Err != nil {
		t.Fatalf("matmul %s: %+v\nlog: %s", input, res.Err, res.Log)
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	wantCUDA := !c.cpu
	if strings.HasPrefix(out.Device, "cuda") != wantCUDA || out.CUDAVisibleDevices == nil || *out.CUDAVisibleDevices != c.visible {
		t.Errorf("ran on %q with CUDA_VISIBLE_DEVICES %v, want cuda %v with %q\nlog: %s", out.Device, out.CUDAVisibleDevices, wantCUDA, c.visible, res.Log)
	}
	return out, pid, cold, wall, res
}

func p(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// TestGPUMatmulWarm: the first job waits for one process to start (its
// cold start: the process, import torch, the device's initialisation), and
// every later job runs on that same process (torch imported once), warm,
// with the GPU it was started with; the artifact lands in each job's own
// output directory. Then heavy jobs back to back keep the GPU busy while
// nvidia-smi samples its utilisation.
func TestGPUMatmulWarm(t *testing.T) {
	c := loadGPUCheck(t)
	r := c.runner(t)
	small := `{"size": 256, "iterations": 10, "seed": 7}`

	out, pid, cold, wall, res := c.job(t, r, small)
	if cold <= 0 || res.ColdStart != cold {
		t.Errorf("first job: cold start %s (result %s), want > 0: no process was ready", cold, res.ColdStart)
	}
	res.RemoveDir()
	t.Logf("GPU CHECK matmul cold start: process %d ready after %d ms (start, import torch %s, %s initialised); first job (size 256) %d ms in all",
		pid, cold.Milliseconds(), out.Torch, out.Device, wall.Milliseconds())

	const warmJobs = 50
	var walls []time.Duration
	for range warmJobs {
		_, wpid, wcold, wwall, wres := c.job(t, r, small)
		if wpid != pid || wcold != 0 || wres.ColdStart != 0 {
			t.Fatalf("warm job on process %d after a wait of %s, want process %d at once: torch would be loaded again", wpid, wcold, pid)
		}
		if _, err := os.Stat(filepath.Join(wres.OutputDir, "result.json")); err != nil {
			t.Errorf("artifact: %v", err)
		}
		wres.RemoveDir()
		walls = append(walls, wwall)
	}
	t.Logf("GPU CHECK matmul warm (size 256, %d jobs on process %d, torch imported once): p50 %.2f ms, p90 %.2f ms, max %.2f ms",
		warmJobs, pid, ms(p(walls, 0.5)), ms(p(walls, 0.9)), ms(p(walls, 1)))

	heavy := []string{
		`{"size": 8192, "batch": 4, "iterations": 20, "dtype": "float16", "seed": 7}`,
		`{"size": 4096, "batch": 8, "iterations": 20, "dtype": "float32", "seed": 7}`,
	}
	if c.cpu {
		heavy = []string{`{"size": 512, "batch": 2, "iterations": 5, "seed": 7}`}
	}
	for _, in := range heavy {
		out, hpid, _, hwall, hres := c.job(t, r, in)
		if hpid != pid {
			t.Errorf("heavy job on process %d, want %d", hpid, pid)
		}
		hres.RemoveDir()
		t.Logf("GPU CHECK matmul warm as uid 65534: input %s device %q torch %s dtype %s: %.0f GFLOP/s in %.3f s of compute, %.3f s for the whole job",
			in, out.Device, out.Torch, out.DType, out.GFLOPS, out.Seconds, hwall.Seconds())
	}

	// A saturating queue's worth: heavy jobs back to back on the warm
	// process while nvidia-smi samples the GPU's utilisation.
	busyFor := 10 * time.Second
	if c.cpu {
		busyFor = 2 * time.Second
	}
	stop := make(chan struct{})
	var samples []int
	var wg sync.WaitGroup
	if !c.cpu {
		wg.Go(func() { samples = sampleGPUBusy(stop) })
	}
	var n int
	var gflops []float64
	for deadline := time.Now().Add(busyFor); time.Now().Before(deadline); n++ {
		out, _, _, _, hres := c.job(t, r, heavy[0])
		hres.RemoveDir()
		gflops = append(gflops, out.GFLOPS)
	}
	close(stop)
	wg.Wait()
	slices.Sort(gflops)
	line := "GPU CHECK matmul saturating: " + strconv.Itoa(n) + " jobs of " + heavy[0] + " back to back in " + busyFor.String() +
		", median " + strconv.FormatFloat(gflops[len(gflops)/2], 'f', 0, 64) + " GFLOP/s"
	if len(samples) > 0 {
		sum := 0
		for _, s := range samples {
			sum += s
		}
		line += ", GPU busy (nvidia-smi utilization.gpu) mean " + strconv.Itoa(sum/len(samples)) + " % over " + strconv.Itoa(len(samples)) + " samples"
	} else {
		line += ", no nvidia-smi samples (CPU fallback)"
	}
	t.Log(line)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sampleGPUBusy samples GPU 0's utilisation every 200 ms until stop.
func sampleGPUBusy(stop <-chan struct{}) []int {
	var got []int
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return got
		case <-tick.C:
			b, err := exec.Command("nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0").Output()
			if err != nil {
				continue
			}
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				got = append(got, v)
			}
		}
	}
}

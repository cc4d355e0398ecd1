package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aigw/aigw/algorithms/internal/algotest"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/sdk/serve"
	"github.com/aigw/aigw/sdk/serve/servetest"
)

// blobs returns n points around each centre, spread by sd, shuffled.
func blobs(centres [][]float64, n int, sd float64, seed uint64) (points [][]float64, truth []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for c, ct := range centres {
		for range n {
			p := make([]float64, len(ct))
			for j := range p {
				p[j] = ct[j] + rng.NormFloat64()*sd
			}
			points = append(points, p)
			truth = append(truth, c)
		}
	}
	rng.Shuffle(len(points), func(i, j int) {
		points[i], points[j] = points[j], points[i]
		truth[i], truth[j] = truth[j], truth[i]
	})
	return points, truth
}

// run runs kmeans in exec mode on the given streams.
func run(stdin io.Reader, stdout, stderr io.Writer) error {
	return serve.Exec(context.Background(), setup, stdin, stdout, stderr)
}

func runJSON(t *testing.T, in any) (Result, string) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := run(bytes.NewReader(b), &out, &errb); err != nil {
		t.Fatalf("run: %v (stderr %s)", err, errb.String())
	}
	var res Result
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	return res, errb.String()
}

func TestRecoversThreeBlobs(t *testing.T) {
	centres := [][]float64{{0, 0}, {10, 10}, {-10, 10}}
	points, truth := blobs(centres, 100, 0.5, 42)
	res, stderr := runJSON(t, map[string]any{"points": points, "k": 3, "seed": 7})

	if len(res.Labels) != len(points) || len(res.Centroids) != 3 {
		t.Fatalf("%d labels, %d centroids", len(res.Labels), len(res.Centroids))
	}
	// The labelling is a bijection of the true clusters.
	mapping := map[int]int{} // true cluster → label
	for i, l := range res.Labels {
		if m, ok := mapping[truth[i]]; !ok {
			mapping[truth[i]] = l
		} else if m != l {
			t.Fatalf("point %d of true cluster %d got label %d, others got %d", i, truth[i], l, m)
		}
	}
	seen := map[int]bool{}
	for tc, l := range mapping {
		if seen[l] {
			t.Fatalf("two true clusters share label %d", l)
		}
		seen[l] = true
		// The centroid is near the true centre.
		if d := math.Sqrt(sqDist(res.Centroids[l], centres[tc], math.Inf(1))); d > 0.2 {
			t.Errorf("centroid %v is %.3f from centre %v", res.Centroids[l], d, centres[tc])
		}
	}
	// Inertia ≈ n·d·sd² = 300·2·0.25 = 150 for a good clustering; a wrong one is
	// in the tens of thousands.
	if res.Inertia <= 0 || res.Inertia > 200 {
		t.Errorf("inertia %v, want about 150", res.Inertia)
	}
	if !res.Converged || res.Iterations < 1 || res.Iterations > 300 {
		t.Errorf("converged %t after %d iterations", res.Converged, res.Iterations)
	}
	// Inertia is the sum of squared distances to the reported centroids.
	sum := 0.0
	for i, p := range points {
		sum += sqDist(p, res.Centroids[res.Labels[i]], math.Inf(1))
	}
	if math.Abs(sum-res.Inertia) > 1e-9*sum {
		t.Errorf("inertia %v, recomputed %v", res.Inertia, sum)
	}
	algotest.CheckProgress(t, stderr)
}

func TestDeterministicWithSeed(t *testing.T) {
	// Overlapping blobs, so that the result depends on the initial centroids.
	points, _ := blobs([][]float64{{0, 0, 0}, {1, 1, 1}, {2, 0, 1}, {0, 2, 2}}, 200, 1, 3)
	in := map[string]any{"points": points, "k": 6, "seed": 12345}
	a, _ := runJSON(t, in)
	b, _ := runJSON(t, in)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same input and seed gave different results")
	}
	differs := false
	for seed := range 5 {
		in["seed"] = 1000 + seed
		if c, _ := runJSON(t, in); !reflect.DeepEqual(a.Labels, c.Labels) {
			differs = true
			break
		}
	}
	if !differs {
		t.Error("five other seeds all gave the same labels: the seed is not used")
	}
}

func TestEdgeCases(t *testing.T) {
	// k = n: every point is its own cluster, inertia 0.
	res, _ := runJSON(t, map[string]any{"points": [][]float64{{1}, {2}, {4}}, "k": 3})
	if res.Inertia != 0 || len(res.Centroids) != 3 {
		t.Errorf("k = n: %+v", res)
	}
	// k = 1: the centroid is the mean.
	res, _ = runJSON(t, map[string]any{"points": [][]float64{{0, 0}, {2, 0}, {0, 4}, {2, 4}}, "k": 1})
	if !reflect.DeepEqual(res.Centroids, [][]float64{{1, 2}}) || res.Inertia != 20 {
		t.Errorf("k = 1: %+v", res)
	}
	// Duplicate points and more clusters than distinct points.
	res, _ = runJSON(t, map[string]any{"points": [][]float64{{5, 5}, {5, 5}, {5, 5}, {1, 1}}, "k": 3, "seed": 9})
	if res.Inertia != 0 || res.Labels[0] != res.Labels[1] || res.Labels[1] != res.Labels[2] || res.Labels[3] == res.Labels[0] {
		t.Errorf("duplicates: %+v", res)
	}
	// max_iter bounds the iterations.
	points, _ := blobs([][]float64{{0, 0}, {1, 1}}, 500, 1, 5)
	res, _ = runJSON(t, map[string]any{"points": points, "k": 8, "max_iter": 1})
	if res.Iterations != 1 || res.Converged {
		t.Errorf("max_iter 1: %d iterations, converged %t", res.Iterations, res.Converged)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`nope`, "input: invalid character"},
		{`{}`, "points is required"},
		{`{"points":[],"k":1}`, "points is required"},
		{`{"points":[[]],"k":1}`, "at least one coordinate"},
		{`{"points":[[1,2],[3]],"k":1}`, "points[1]: 1 dimensions, want 2"},
		{`{"points":[[1,2],[3,4]],"k":0}`, "k = 0: want 1 ≤ k ≤ number of points (2)"},
		{`{"points":[[1,2],[3,4]],"k":3}`, "k = 3: want 1 ≤ k"},
		{`{"points":[[1,2],[3,4]]}`, "k = 0"},
		{`{"points":[[1,2],[3,4]],"k":1,"max_iter":0}`, "max_iter = 0"},
		{`{"points":[[1,2],[3,4]],"k":1,"max_iter":10001}`, "max_iter = 10001"},
		{`{"points":[[1,2],[3,4]],"k":1,"seed":-1}`, "seed"},
		{`{"points":[[1,2],[3,4]],"k":1,"tolerance":-1}`, "tolerance = -1"},
		{`{"points":[[1,2],[3,1e200]],"k":1}`, "points[1][1]"},
		{`{"points":[[1,"a"]],"k":1}`, "input: json"},
		{`{"points":[[1]],"k":1,"extra":true}`, `unknown field "extra"`},
		{`{"points":[[1]],"k":1.5}`, "k"},
	} {
		var out, errb bytes.Buffer
		err := run(strings.NewReader(tc.in), &out, &errb)
		if err == nil {
			t.Errorf("%s accepted: %s", tc.in, out.String())
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.in, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: wrote output %q on error", tc.in, out.String())
		}
	}
	// An input past the byte limit fails as such, not as truncated JSON.
	dec := json.NewDecoder(&limitReader{r: strings.NewReader(`{"points":[[1],[2]],"k":1}`), left: 10})
	var in input
	if err := dec.Decode(&in); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized input: %v", err)
	}
	// Size limits.
	big := make([][]float64, MaxValues/MaxDims+1)
	for i := range big {
		big[i] = make([]float64, MaxDims)
	}
	if err := validate(big, Params{K: 1, MaxIter: 1}); err == nil || !strings.Contains(err.Error(), "values, at most") {
		t.Errorf("too many values: %v", err)
	}
	if err := validate([][]float64{make([]float64, MaxDims+1)}, Params{K: 1, MaxIter: 1}); err == nil || !strings.Contains(err.Error(), "dimensions, at most") {
		t.Errorf("too many dimensions: %v", err)
	}
}

// TestMain runs the binary's main for the subprocess test below.
func TestMain(m *testing.M) {
	if os.Getenv("AIGW_KMEANS_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(testleak.Run(m))
}

// testCommand runs this test binary as aigw-kmeans with stdin in.
func testCommand(t *testing.T, in string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "AIGW_KMEANS_TEST_MAIN=1", "AIGW_SERVE=")
	cmd.Stdin = strings.NewReader(in)
	return cmd
}

func TestProcessExitStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
	}{{`{"points":[[1],[2]],"k":1}`, 0}, {`{"points":[[1],[2]],"k":5}`, 1}} {
		cmd := testCommand(t, tc.in)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		if code != tc.code {
			t.Fatalf("%s: exit %d (%v), want %d; stderr %s", tc.in, code, err, tc.code, errb.String())
		}
		if tc.code != 0 && !strings.HasSuffix(errb.String(), ": input: k = 5: want 1 ≤ k ≤ number of points (2)\n") {
			t.Errorf("stderr %q lacks the reason", errb.String())
		}
		if tc.code == 0 && !strings.Contains(out.String(), `"centroids":[[1.5]]`) {
			t.Errorf("stdout %q", out.String())
		}
	}
}

// TestServe runs the program as the warm runtime does: jobs one after
// another in one process, progress, a bad input failing without a retry, and
// a cancel stopping the iterations.
func TestServe(t *testing.T) {
	cmd := testCommand(t, "")
	cmd.Stdin = nil
	p := servetest.Start(t, cmd)
	for seed := range 2 {
		points, _ := blobs([][]float64{{0, 0}, {10, 10}}, 50, 0.5, uint64(seed))
		res := p.Run(t, map[string]any{"points": points, "k": 2, "seed": seed})
		var out Result
		if res.Error != nil || json.Unmarshal(res.Output, &out) != nil || len(out.Labels) != 100 || !out.Converged {
			t.Fatalf("job %d: %s %+v", seed, res.Output, res.Error)
		}
		if n := len(res.Progress); n < 2 || *res.Progress[0].Progress != 0 || *res.Progress[n-1].Progress != 1 {
			t.Errorf("job %d: progress %+v", seed, res.Progress)
		}
	}
	res := p.Run(t, map[string]any{"points": [][]float64{{1}}, "k": 2})
	if res.Error == nil || res.Error.Retryable || res.Error.Message != "input: k = 2: want 1 ≤ k ≤ number of points (1)" {
		t.Fatalf("bad input: %+v", res.Error)
	}

	// A long run (many clusters, no tolerance) stops at its cancel.
	rng := rand.New(rand.NewPCG(1, 2))
	points := make([][]float64, 50_000)
	for i := range points {
		points[i] = []float64{rng.Float64(), rng.Float64()}
	}
	id, _ := p.Submit(t, map[string]any{"points": points, "k": 500, "tolerance": 0, "max_iter": MaxIter})
	if m := p.Next(t); m.Type != "progress" || m.ID != id || *m.Progress != 0 {
		t.Fatalf("message %+v, want the first progress", m)
	}
	p.Cancel(t, id)
	if res := p.Collect(t, id); res.Error == nil || res.Error.Message != "context canceled" {
		t.Fatalf("canceled run: %.100s %+v", res.Output, res.Error)
	}
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}

func TestDefinition(t *testing.T) {
	d, err := algorithm.LoadFile(filepath.Join(".", algorithm.DefinitionFile))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "kmeans" || d.Pool != "cpu" || d.Runtime.Type != algorithm.Serve || !reflect.DeepEqual(d.Runtime.Command, []string{"aigw-kmeans"}) ||
		d.Runtime.MaxJobs != 1000 {
		t.Fatalf("definition %+v", d)
	}
	schema, err := d.CompileSchema()
	if err != nil || schema == nil {
		t.Fatalf("schema: %v", err)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"points":[[1,2],[3,4]],"k":2}`, true},
		{`{"points":[[1,2],[3,4]],"k":2,"max_iter":10,"seed":3,"tolerance":0.001}`, true},
		{`{"points":[[1,2]]}`, false},
		{`{"points":[],"k":1}`, false},
		{`{"points":[[]],"k":1}`, false},
		{`{"points":[["a"]],"k":1}`, false},
		{`{"points":[[1]],"k":0}`, false},
		{`{"points":[[1]],"k":1,"seed":-1}`, false},
		{`{"points":[[1]],"k":1,"other":1}`, false},
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

// BenchmarkCluster10k8d clusters 10,000 8-dimensional points into 16 clusters.
// Expect well under a second per op on one core.
func BenchmarkCluster10k8d(b *testing.B) {
	centres := make([][]float64, 16)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range centres {
		centres[i] = make([]float64, 8)
		for j := range centres[i] {
			centres[i][j] = rng.Float64() * 20
		}
	}
	points, _ := blobs(centres, 625, 1.5, 11)
	b.ReportAllocs()
	var iters int
	for b.Loop() {
		res := Cluster(points, Params{K: 16, MaxIter: DefaultMaxIter, Seed: 1, Tolerance: DefaultTol})
		iters = res.Iterations
	}
	b.ReportMetric(float64(iters), "iterations")
}

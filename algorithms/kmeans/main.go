// Command aigw-kmeans is the k-means reference algorithm, a CPU algorithm that
// does real work. Its input is
//
//	{"points": [[x, y, ...], ...], "k": int, "max_iter": int (optional, default 300),
//	 "seed": int (optional, default 1), "tolerance": float (optional, default 1e-9)}
//
// It clusters the points (k-means++ initialisation from the seed, then Lloyd
// iterations until no label changes, the centroids move less than the
// tolerance, or max_iter); its output is
//
//	{"centroids": [[...], ...], "labels": [int, ...], "inertia": float,
//	 "iterations": int, "converged": bool}
//
// Inertia is the sum of squared distances of the points to
// their centroids. Progress is reported at most every 200 ms; a cancel stops
// the iterations. The same input and seed always give the same output. Built
// on the Go SDK (sdk/serve), it runs under the warm runtime (AIGW_SERVE=1) and
// as an exec program (input on stdin, output on stdout, progress and the
// reason of a bad input on stderr).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/aigw/aigw/sdk/serve"
)

// Input limits.
const (
	MaxPoints       = 1_000_000
	MaxDims         = 1024
	MaxValues       = 20_000_000 // points × dimensions
	MaxK            = 10_000
	MaxIter         = 10_000
	DefaultMaxIter  = 300
	DefaultSeed     = 1
	DefaultTol      = 1e-9
	maxInputBytes   = 512 << 20
	progressEvery   = 200 * time.Millisecond
	progressMessage = "iteration %d: %d labels changed, inertia %.6g"
)

type input struct {
	Points    [][]float64 `json:"points"`
	K         int         `json:"k"`
	MaxIter   *int        `json:"max_iter"`
	Seed      *uint64     `json:"seed"`
	Tolerance *float64    `json:"tolerance"`
}

// Result is the output document.
type Result struct {
	Centroids  [][]float64 `json:"centroids"`
	Labels     []int       `json:"labels"`
	Inertia    float64     `json:"inertia"`
	Iterations int         `json:"iterations"`
	Converged  bool        `json:"converged"`
}

// Params are the validated settings of one run.
type Params struct {
	K         int
	MaxIter   int
	Seed      uint64
	Tolerance float64
	// Progress, when set, is called after each iteration.
	Progress func(iter, changed int, inertia float64)
	// Stop, when set, is asked before each iteration; true ends the
	// iterations (the result is then not converged).
	Stop func() bool
}

func main() { serve.Main(setup) }

// setup has nothing to load: kmeans is ready at once.
func setup(context.Context) (serve.Handler, error) { return handle, nil }

func handle(ctx context.Context, job *serve.Job) (any, error) {
	points, p, err := parse(bytes.NewReader(job.Input))
	if err != nil {
		return nil, serve.InputError(err)
	}
	var last time.Time
	p.Progress = func(iter, changed int, inertia float64) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			job.Progress(float64(iter)/float64(p.MaxIter), fmt.Sprintf(progressMessage, iter, changed, inertia))
		}
	}
	p.Stop = func() bool { return ctx.Err() != nil }
	job.Progress(0, fmt.Sprintf("clustering %d points of dimension %d into %d clusters", len(points), len(points[0]), p.K))
	res := Cluster(points, p)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	job.Progress(1, fmt.Sprintf("done after %d iterations (converged: %t), inertia %.6g", res.Iterations, res.Converged, res.Inertia))
	return res, nil
}

// parse decodes and validates the input.
func parse(r io.Reader) ([][]float64, Params, error) {
	var in input
	dec := json.NewDecoder(&limitReader{r: r, left: maxInputBytes})
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, Params{}, fmt.Errorf("input: %w", err)
	}
	p := Params{K: in.K, MaxIter: DefaultMaxIter, Seed: DefaultSeed, Tolerance: DefaultTol}
	if in.MaxIter != nil {
		p.MaxIter = *in.MaxIter
	}
	if in.Seed != nil {
		p.Seed = *in.Seed
	}
	if in.Tolerance != nil {
		p.Tolerance = *in.Tolerance
	}
	if err := validate(in.Points, p); err != nil {
		return nil, Params{}, fmt.Errorf("input: %w", err)
	}
	return in.Points, p, nil
}

// limitReader fails a read past its limit, so that an oversized input gets a
// clear error rather than a truncated document.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("larger than %d MiB", maxInputBytes>>20)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func validate(points [][]float64, p Params) error {
	n := len(points)
	switch {
	case n == 0:
		return errors.New("points is required: a non-empty array of points")
	case n > MaxPoints:
		return fmt.Errorf("points: %d points, at most %d", n, MaxPoints)
	}
	d := len(points[0])
	switch {
	case d == 0:
		return errors.New("points[0]: a point needs at least one coordinate")
	case d > MaxDims:
		return fmt.Errorf("points[0]: %d dimensions, at most %d", d, MaxDims)
	case n*d > MaxValues:
		return fmt.Errorf("points: %d points × %d dimensions = %d values, at most %d", n, d, n*d, MaxValues)
	}
	for i, pt := range points {
		if len(pt) != d {
			return fmt.Errorf("points[%d]: %d dimensions, want %d like points[0]: all points must have the same dimension", i, len(pt), d)
		}
		for j, v := range pt {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e150 {
				return fmt.Errorf("points[%d][%d]: %v is not a finite number of magnitude at most 1e150", i, j, v)
			}
		}
	}
	switch {
	case p.K < 1 || p.K > n:
		return fmt.Errorf("k = %d: want 1 ≤ k ≤ number of points (%d)", p.K, n)
	case p.K > MaxK:
		return fmt.Errorf("k = %d: at most %d", p.K, MaxK)
	case p.MaxIter < 1 || p.MaxIter > MaxIter:
		return fmt.Errorf("max_iter = %d: want 1-%d", p.MaxIter, MaxIter)
	case p.Tolerance < 0 || math.IsNaN(p.Tolerance) || math.IsInf(p.Tolerance, 0):
		return fmt.Errorf("tolerance = %v: want a finite number ≥ 0", p.Tolerance)
	}
	return nil
}

// Cluster runs k-means on validated points: k-means++ seeding, then Lloyd
// iterations. It is deterministic for a given seed.
func Cluster(points [][]float64, p Params) Result {
	n, d := len(points), len(points[0])
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	cent := seedPlusPlus(points, p.K, rng)

	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	sums := make([][]float64, p.K)
	for c := range sums {
		sums[c] = make([]float64, d)
	}
	counts := make([]int, p.K)
	dist := make([]float64, n) // squared distance of each point to its centroid

	res := Result{}
	for iter := 1; iter <= p.MaxIter; iter++ {
		if p.Stop != nil && p.Stop() {
			break
		}
		// Assignment step.
		changed := 0
		inertia := 0.0
		for i, pt := range points {
			best, bestD := 0, math.Inf(1)
			for c, ct := range cent {
				if dd := sqDist(pt, ct, bestD); dd < bestD {
					best, bestD = c, dd
				}
			}
			if labels[i] != best {
				labels[i] = best
				changed++
			}
			dist[i] = bestD
			inertia += bestD
		}
		res.Iterations = iter
		if changed == 0 {
			// The centroids are already the means of their clusters.
			res.Converged = true
			if p.Progress != nil {
				p.Progress(iter, 0, inertia)
			}
			break
		}

		// Update step.
		for c := range sums {
			clear(sums[c])
			counts[c] = 0
		}
		for i, pt := range points {
			c := labels[i]
			counts[c]++
			s := sums[c]
			for j, v := range pt {
				s[j] += v
			}
		}
		shift := 0.0
		for c := range cent {
			if counts[c] == 0 {
				// An empty cluster takes the point farthest from its centroid.
				far := 0
				for i := range dist {
					if dist[i] > dist[far] {
						far = i
					}
				}
				copy(sums[c], points[far])
				counts[c] = 1
				dist[far] = 0
				labels[far] = -1 // counts as changed in the next assignment
			}
			moved := 0.0
			for j := range cent[c] {
				v := sums[c][j] / float64(counts[c])
				moved += (v - cent[c][j]) * (v - cent[c][j])
				cent[c][j] = v
			}
			shift = math.Max(shift, moved)
		}
		if p.Progress != nil {
			p.Progress(iter, changed, inertia)
		}
		if shift <= p.Tolerance*p.Tolerance {
			// Centroids stopped moving: one last assignment below settles the labels.
			res.Converged = true
			break
		}
	}

	// Final labels and inertia against the final centroids.
	res.Inertia = 0
	for i, pt := range points {
		best, bestD := 0, math.Inf(1)
		for c, ct := range cent {
			if dd := sqDist(pt, ct, bestD); dd < bestD {
				best, bestD = c, dd
			}
		}
		labels[i] = best
		res.Inertia += bestD
	}
	res.Centroids = cent
	res.Labels = labels
	return res
}

// seedPlusPlus picks k initial centroids by k-means++: the first uniformly,
// each next one with probability proportional to its squared distance to the
// nearest centroid chosen so far.
func seedPlusPlus(points [][]float64, k int, rng *rand.Rand) [][]float64 {
	n := len(points)
	cent := make([][]float64, 0, k)
	cent = append(cent, clone(points[rng.IntN(n)]))
	near := make([]float64, n)
	total := 0.0
	for i, pt := range points {
		near[i] = sqDist(pt, cent[0], math.Inf(1))
		total += near[i]
	}
	for len(cent) < k {
		var next int
		if total <= 0 {
			// Every point sits on a centroid already (duplicates): any point will do.
			next = rng.IntN(n)
		} else {
			r := rng.Float64() * total
			next = n - 1
			for i, w := range near {
				if r < w {
					next = i
					break
				}
				r -= w
			}
		}
		c := clone(points[next])
		cent = append(cent, c)
		total = 0
		for i, pt := range points {
			if dd := sqDist(pt, c, near[i]); dd < near[i] {
				near[i] = dd
			}
			total += near[i]
		}
	}
	return cent
}

// sqDist is the squared Euclidean distance of a and b, or some value ≥ limit
// once the partial sum reaches limit (callers only want it when it is smaller).
func sqDist(a, b []float64, limit float64) float64 {
	s := 0.0
	for j := range a {
		v := a[j] - b[j]
		s += v * v
		if s >= limit {
			return s
		}
	}
	return s
}

func clone(p []float64) []float64 { return append([]float64(nil), p...) }

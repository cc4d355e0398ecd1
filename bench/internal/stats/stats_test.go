package stats

import (
	"testing"
	"time"
)

func TestQuantileIsNearestRank(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} // 1..10, unsorted
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.10, 1}, {0.50, 5}, {0.55, 6}, {0.90, 9}, {0.99, 10}, {1, 10}} {
		if got := Quantile(d, c.q); got != c.want {
			t.Errorf("Quantile(1..10, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if d[0] != 5 {
		t.Fatalf("Quantile sorted its argument: %v", d)
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Fatalf("Quantile(nil) = %v, want 0", got)
	}
}

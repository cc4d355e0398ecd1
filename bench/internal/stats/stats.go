// Package stats holds the benches' shared figures of latency samples.
package stats

import (
	"slices"
	"time"
)

// Quantile returns the q-quantile of d by nearest rank (d is not changed;
// 0 when d is empty).
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

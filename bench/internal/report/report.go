// Package report collects benchmark figures, prints them as tables and writes
// them to bench/results/latest.json, which every aigw benchmark appends to.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Row is one figure: {"bench", "system", "metric", "value", "unit"}.
type Row struct {
	Bench  string  `json:"bench"`
	System string  `json:"system"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
}

// Report is the figures of one run.
type Report struct{ Rows []Row }

// Add records a figure.
func (r *Report) Add(bench, system, metric string, value float64, unit string) {
	r.Rows = append(r.Rows, Row{bench, system, metric, value, unit})
}

// Get returns a figure, or false.
func (r *Report) Get(bench, system, metric string) (float64, bool) {
	for _, row := range r.Rows {
		if row.Bench == bench && row.System == system && row.Metric == metric {
			return row.Value, true
		}
	}
	return 0, false
}

// Table prints one bench as metrics × systems.
func (r *Report) Table(w io.Writer, bench string, systems []string) {
	var metrics []string
	units := map[string]string{}
	for _, row := range r.Rows {
		if row.Bench != bench {
			continue
		}
		if _, ok := units[row.Metric]; !ok {
			metrics = append(metrics, row.Metric)
			units[row.Metric] = row.Unit
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tunit\t%s\t\n", bench, strings.Join(systems, "\t"))
	for _, m := range metrics {
		fmt.Fprintf(tw, "%s\t%s", m, units[m])
		for _, s := range systems {
			if v, ok := r.Get(bench, s, m); ok {
				fmt.Fprintf(tw, "\t%s", format(v))
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		fmt.Fprint(tw, "\t\n")
	}
	_ = tw.Flush()
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Merge writes the rows to path, replacing earlier rows of the same benches and
// keeping the rows of other benches (written by other benchmark programs).
func (r *Report) Merge(path string) error {
	var old []Row
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &old); err != nil {
			return fmt.Errorf("%s: %w (delete it to start afresh)", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	mine := map[string]bool{}
	for _, row := range r.Rows {
		mine[row.Bench] = true
	}
	out := []Row{}
	for _, row := range old {
		if !mine[row.Bench] {
			out = append(out, row)
		}
	}
	out = append(out, r.Rows...)
	b, err = json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aigw/aigw/bench/internal/fairnessbench"
	"github.com/aigw/aigw/bench/internal/report"
	"github.com/aigw/aigw/internal/redisconn"
)

// runFairness measures fair share (issue 16): two tenants with weights 3:1
// saturating a pool of slots simulated in process on the shared Redis
// Cluster for d, a third tenant arriving halfway.
func runFairness(ctx context.Context, rep *report.Report, d time.Duration, slots int, run time.Duration) error {
	addrs, err := redisAddrs()
	if err != nil {
		return err
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs})
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	slog.Info("running", "bench", "fairness", "for", d, "slots", slots, "run", run)
	r, err := fairnessbench.Run(ctx, fairnessbench.Config{Redis: rdb, Duration: d, Slots: slots, Run: run, Progress: os.Stdout})
	if err != nil {
		return fmt.Errorf("fairness bench: %w", err)
	}
	rep.Add("fairness", "aigw", "served_ratio", r.ServedRatio, "heavy ÷ light slot-seconds, weights 3:1 (target 3.0 ± 10 %)")
	rep.Add("fairness", "aigw", "late_tenant_first_start_ratio", r.LateStartRatio, "its first job's wait ÷ mean run (target <= 2)")
	rep.Add("fairness", "aigw", "eta_error_pct", r.ETAErrorPct, fmt.Sprintf("%% median |start - eta_start| ÷ wait, %d waiting jobs", r.ETASamples))
	rep.Add("fairness", "aigw", "eta_bias_pct", r.ETABiasPct, "% median (start - eta_start) ÷ wait: > 0 starts later than estimated")
	rep.Add("fairness", "aigw", "jobs", float64(r.Jobs), "jobs run")
	fmt.Printf("fairness: %d slots, %s mean run (light tenant's twice as long), %s saturated, late tenant at half time; Redis Cluster %v\n",
		slots, run, d, addrs)
	rep.Table(os.Stdout, "fairness", []string{"aigw"})
	fmt.Println()
	return nil
}

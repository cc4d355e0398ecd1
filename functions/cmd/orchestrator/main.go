// Command orchestrator serves the orchestrator function: pipelines, webhook
// delivery, reaper and reconciler (see package orchestrator).
//
//	orchestrator [serve]    serve the function (default)
//	orchestrator version    print the version
package main

import (
	"context"
	"log/slog"

	"github.com/aigw/aigw/functions/orchestrator"
	"github.com/aigw/aigw/internal/fnserve"
)

var version = "dev"

func main() { fnserve.Main("orchestrator", version, run) }

func run(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	cfg, err := orchestrator.ReadConfig(getenv)
	if err != nil {
		return err
	}
	svc, closeConns, err := orchestrator.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeConns()
	if cfg.Interval > 0 {
		go svc.RunTicker(ctx, cfg.Interval)
	}
	go svc.FollowQuotaChanges(ctx)
	cfg.Serve.Metrics = svc.Metrics().Registry
	return fnserve.Serve(ctx, log, cfg.Serve, svc.Handler())
}

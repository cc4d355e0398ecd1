// Command orchestrator serves the orchestrator function: pipelines, webhook
// delivery, reaper and reconciler (see package orchestrator).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aigw/aigw/functions/orchestrator"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/logging"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	log, err := logging.New(os.Stderr, os.Getenv, "orchestrator", version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("orchestrator stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := orchestrator.ReadConfig(os.Getenv)
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
	cfg.Serve.Metrics = svc.Metrics().Registry
	return fnserve.Serve(ctx, log, cfg.Serve, svc.Handler())
}

// Command executors serves the executors function: the executor API that
// machines outside the private network serve pools through (see package executors).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aigw/aigw/functions/executors"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/logging"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	log, err := logging.New(os.Stderr, os.Getenv, "executors", version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "executors:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("executors stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := executors.ReadConfig(os.Getenv)
	if err != nil {
		return err
	}
	svc, closeConns, err := executors.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeConns()
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	defer func() { <-done }()
	return fnserve.Serve(ctx, log, cfg.Serve, svc.Handler())
}

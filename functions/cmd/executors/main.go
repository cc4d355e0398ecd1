// Command executors serves the executors function: the executor API that
// machines outside the private network serve pools through (see package executors).
//
//	executors [serve]    serve the function (default)
//	executors version    print the version
package main

import (
	"context"
	"log/slog"

	"github.com/aigw/aigw/functions/executors"
	"github.com/aigw/aigw/internal/fnserve"
)

var version = "dev"

func main() { fnserve.Main("executors", version, run) }

func run(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	cfg, err := executors.ReadConfig(getenv)
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

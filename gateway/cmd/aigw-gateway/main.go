// Command aigw-gateway is an OpenFaaS-compatible gateway that runs functions as
// local processes: faas-cli and go-sdk talk to it as to OpenFaaS.
//
//	aigw-gateway            serve (configured by AIGW_GATEWAY_* env, see internal/config)
//	aigw-gateway version    print the version
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aigw/aigw/gateway/internal/config"
	"github.com/aigw/aigw/gateway/internal/server"
	"github.com/aigw/aigw/internal/logging"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "version", "--version", "-version":
			fmt.Println(version)
			return
		default:
			fmt.Fprintf(os.Stderr, "usage: aigw-gateway [version]\nunknown argument %q\n", os.Args[1])
			os.Exit(2)
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "aigw-gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	log := logging.NewAt(os.Stderr, cfg.LogLevel, "aigw-gateway", version)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := server.New(ctx, cfg, server.Options{Version: version, Logger: log})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		_ = g.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", "grace", cfg.StopGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.StopGrace+5*time.Second)
	defer cancel()
	return g.Shutdown(sctx)
}

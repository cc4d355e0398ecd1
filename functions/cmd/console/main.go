// Command console is aigw's console function: the web console over the
// public API (see package console).
//
//	console [serve]    serve the function (default)
//	console version    print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aigw/aigw/functions/console"
	"github.com/aigw/aigw/internal/logging"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, err := logging.New(os.Stderr, os.Getenv, "console", version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		stop()
		os.Exit(2)
	}
	if err := run(ctx, log, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		log.Error("console failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string, getenv func(string) string, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch {
	case cmd == "serve" && len(args) <= 1:
		return console.Serve(ctx, log, getenv)
	case cmd == "version" && len(args) == 1:
		_, err := fmt.Fprintln(stdout, version)
		return err
	}
	return errors.New("usage: console [serve | version]")
}

// Command aigw is aigw's command-line tool: algorithms, jobs with a live
// progress bar, pools and dead letters over the public API (internal/cli).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/aigw/aigw/internal/cli"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "0.0.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, version, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

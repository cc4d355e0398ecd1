package fnserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/aigw/aigw/internal/logging"
)

// RunFunc serves a function until ctx ends (SIGTERM or SIGINT), reading its
// configuration through getenv.
type RunFunc func(ctx context.Context, log *slog.Logger, getenv func(string) string) error

// Command is a command of a function's binary besides serve and version
// (e.g. the auth function's genkey).
type Command struct {
	// Name is the first argument that runs it; Usage its synopsis, e.g.
	// "create-client -name N -tenant T".
	Name, Usage string
	// Run runs it with the arguments after Name.
	Run func(ctx context.Context, log *slog.Logger, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// Main is every function command's main:
//
//	NAME [serve]    serve the function (default): run until SIGTERM or SIGINT
//	NAME version    print the version
//	NAME CMD ARGS   one of cmds
//
// It logs as logging.New does for name and version (a bad AIGW_LOG_LEVEL
// stops it with exit code 2), and exits 1 after logging the error that run
// or a command returns, or a usage error.
func Main(name, version string, run RunFunc, cmds ...Command) {
	os.Exit(exitCode(name, version, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, run, cmds))
}

func exitCode(name, version string, args []string, getenv func(string) string, stdout, stderr io.Writer, run RunFunc, cmds []Command) int {
	if len(args) == 1 && args[0] == "version" { // also with a bad log level
		fmt.Fprintln(stdout, version)
		return 0
	}
	log, err := logging.New(stderr, getenv, name, version)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, log, name, version, args, getenv, stdout, stderr, run, cmds...); err != nil {
		log.Error(name+" failed", "err", err)
		return 1
	}
	return 0
}

// ErrUsage is the error of a command line Run does not know.
var ErrUsage = errors.New("usage")

// Run runs a function's command line args (without the program name): serve
// (the default) with run, version, or one of cmds; anything else is an error
// wrapping ErrUsage that shows the usage.
func Run(ctx context.Context, log *slog.Logger, name, version string, args []string, getenv func(string) string,
	stdout, stderr io.Writer, run RunFunc, cmds ...Command) error {
	cmd, rest := "serve", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	switch {
	case cmd == "serve" && len(rest) == 0:
		return run(ctx, log, getenv)
	case cmd == "version" && len(rest) == 0:
		_, err := fmt.Fprintln(stdout, version)
		return err
	}
	for _, c := range cmds {
		if c.Name == cmd {
			return c.Run(ctx, log, rest, getenv, stdout, stderr)
		}
	}
	usage := []string{"serve", "version"}
	for _, c := range cmds {
		usage = append(usage, c.Usage)
	}
	return fmt.Errorf("%w: %s [%s]", ErrUsage, name, strings.Join(usage, " | "))
}

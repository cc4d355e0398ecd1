// Command aigw-devmongo is aigw's MongoDB-wire server for development and CI:
// FerretDB (SQLite backend) behind a proxy that never runs two commands on the
// same document at once (commands that may touch many documents run alone), so
// conditional updates are linearizable as on MongoDB. Never for production.
//
//	aigw-devmongo [-listen 127.0.0.1:27018] [-data-dir .aigw/ferretdb] [-log-level info]
//	aigw-devmongo -ping 127.0.0.1:27018     # exit 0 when a hello round trip succeeds
//
// Flags default to the environment: AIGW_DEVMONGO_LISTEN, AIGW_DEVMONGO_DATA_DIR,
// AIGW_DEVMONGO_LOG_LEVEL, AIGW_DEVMONGO_BACKEND_LOG_LEVEL. SIGINT or SIGTERM
// stops it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/tools/internal/devmongo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// config is what the flags and environment say.
type config struct {
	listen          string
	dataDir         string
	logLevel        slog.Level
	backendLogLevel slog.Level
	ping            string
	pingTimeout     time.Duration
}

// parseConfig reads args over defaults taken from getenv. Bad values are errors.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	envOr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("aigw-devmongo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", envOr("AIGW_DEVMONGO_LISTEN", "127.0.0.1:27018"), "public TCP address (env AIGW_DEVMONGO_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", envOr("AIGW_DEVMONGO_DATA_DIR", ".aigw/ferretdb"), "directory of the SQLite files (env AIGW_DEVMONGO_DATA_DIR)")
	logLevel := fs.String("log-level", envOr("AIGW_DEVMONGO_LOG_LEVEL", "info"), "debug, info, warn or error (env AIGW_DEVMONGO_LOG_LEVEL)")
	backendLogLevel := fs.String("backend-log-level", envOr("AIGW_DEVMONGO_BACKEND_LOG_LEVEL", "error"), "FerretDB's own log level (env AIGW_DEVMONGO_BACKEND_LOG_LEVEL)")
	fs.StringVar(&c.ping, "ping", "", "only check that a MongoDB hello round trip to `ADDR` succeeds (exit 0) or not (exit 1)")
	fs.DurationVar(&c.pingTimeout, "ping-timeout", 2*time.Second, "time allowed for -ping")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if c.logLevel, err = parseLevel(*logLevel); err != nil {
		return c, fmt.Errorf("log level: %w", err)
	}
	if c.backendLogLevel, err = parseLevel(*backendLogLevel); err != nil {
		return c, fmt.Errorf("backend log level: %w", err)
	}
	if c.pingTimeout <= 0 {
		return c, fmt.Errorf("ping timeout %s is not positive", c.pingTimeout)
	}
	return c, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.TrimSpace(s)))
	return l, err
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "aigw-devmongo:", err)
		return 2
	}
	if cfg.ping != "" {
		if err := ping(cfg.ping, cfg.pingTimeout); err != nil {
			fmt.Fprintf(stderr, "aigw-devmongo: ping %s: %v\n", cfg.ping, err)
			return 1
		}
		return 0
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	backendLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.backendLogLevel})).With("component", "ferretdb")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	srv, err := devmongo.Start(startCtx, devmongo.Config{
		Addr:          cfg.listen,
		DataDir:       cfg.dataDir,
		Logger:        log,
		BackendLogger: backendLog,
	})
	cancel()
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-srv.Done():
		log.Error("ferretdb stopped unexpectedly")
		code = 1
	}
	if err := srv.Close(); err != nil {
		log.Error("shutdown", "err", err)
		code = 1
	}
	return code
}

// ping connects to addr directly (no topology discovery) and runs hello.
func ping(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := options.Client().
		ApplyURI("mongodb://" + addr + "/").
		SetDirect(true).
		SetServerSelectionTimeout(timeout).
		SetConnectTimeout(timeout)
	client, err := mongo.Connect(opts)
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	var res bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&res); err != nil {
		return err
	}
	if w, _ := res["isWritablePrimary"].(bool); !w {
		return fmt.Errorf("not a writable primary: %v", res)
	}
	return nil
}

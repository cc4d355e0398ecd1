package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/worker/agent"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/gpu"
	"github.com/aigw/aigw/worker/internal/metrics"
)

// isJoin reports whether args ask for a joined worker (--join URL).
func isJoin(args []string) bool {
	return len(args) > 0 && (args[0] == "--join" || args[0] == "-join" ||
		len(args[0]) > 7 && (args[0][:7] == "--join=" || args[0][:6] == "-join="))
}

// join runs `aigw-worker --join URL --token T`: a worker that serves the
// pool of its executor token through the executor API at URL (the gateway's
// /function/executors), holding no Redis or MongoDB credential.
func join(ctx context.Context, args []string, log *slog.Logger, stderr io.Writer) error {
	fs := flag.NewFlagSet("aigw-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("join", "", "the executor API's URL (AIGW_EXECUTORS_URL, e.g. https://gw.example.com/function/executors)")
	token := fs.String("token", "", "the executor token (POST /admin/executors answers it once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--join %q: want the executor API's http(s) URL", *base)
	}
	if *token == "" {
		return errors.New("--token is required: the executor token POST /admin/executors answered")
	}
	cfg, err := config.LoadJoin(os.LookupEnv, os.Hostname)
	if err != nil {
		return err
	}
	gpus, err := gpu.Discover(ctx, cfg.NvidiaSMI)
	if err != nil {
		log.Warn("GPU discovery failed: running CPU-only", "err", err)
		gpus = nil
	}
	m := metrics.New()
	cache, err := assetCache(cfg, m)
	if err != nil {
		return err
	}
	w := agent.NewJoined(cfg, executorapi.NewClient(*base, *token, nil), gpus, version, agent.JoinDeps{
		Log: log, Metrics: m, HTTP: egress.NewGuard(cfg.URLAllowedNets).Client(), Assets: cache})
	if cfg.MetricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMetrics()
		go func() {
			if err := metrics.Serve(mctx, cfg.MetricsAddr, m.Handler(w.Healthy)); err != nil {
				log.Error("metrics server failed", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	log.Info("worker joining", "url", *base, "slots", w.Slots(), "gpus", len(gpus))
	start := time.Now()
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("worker stopped", "uptime", time.Since(start).Round(time.Second).String())
	return nil
}

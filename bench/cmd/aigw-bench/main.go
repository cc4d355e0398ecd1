// Command aigw-bench runs aigw's benchmarks beside its peers on the same servers in
// the same run, prints the tables and writes every figure to a JSON file.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/aigw/aigw/bench/internal/gatewaybench"
	"github.com/aigw/aigw/bench/internal/queuebench"
	"github.com/aigw/aigw/bench/internal/report"
	"github.com/aigw/aigw/bench/internal/routerbench"
	"github.com/aigw/aigw/bench/internal/storebench"
	"github.com/aigw/aigw/internal/redisconn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "aigw-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "results/latest.json", "JSON file the figures are merged into")
	only := flag.String("only", "queue,jobstore", "benches to run, comma-separated")
	jobs := flag.Int("jobs", 50000, "end-to-end queue jobs")
	producers := flag.Int("producers", 16, "producers")
	consumers := flag.Int("consumers", 16, "consumers")
	rate := flag.Int("paced-rate", 1000, "jobs/s of the paced latency run")
	pacedFor := flag.Duration("paced-for", 5*time.Second, "length of the paced latency run")
	memJobs := flag.Int("memory-jobs", 20000, "jobs left queued to measure memory per job")
	storeJobs := flag.Int("store-jobs", 500, "jobs for the job-store bench (FerretDB transitions slow down with the collection size)")
	storeWorkers := flag.Int("store-workers", 8, "goroutines for the job-store bench")
	linger := flag.Duration("linger", 0, "aigw consumers' queue.Config.Linger (0: its default, negative: none)")
	pipelines := flag.Int("enqueue-pipelines", 0, "aigw's queue.Config.EnqueuePipelines (0: its default)")
	systems := flag.String("systems", "aigw,asynq,asynq-tuned", "queue systems to run, comma-separated")
	gwFor := flag.Duration("gateway-for", 10*time.Second, "gateway bench: load time per target (direct, proxied)")
	gwConc := flag.Int("gateway-concurrency", 32, "gateway bench: concurrent requests")
	routerFor := flag.Duration("router-for", 5*time.Second, "router bench: load time (e.g. 20s)")
	routerConc := flag.Int("router-concurrency", 16, "router bench: concurrent clients")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process to the file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	benches := map[string]bool{}
	for _, b := range strings.Split(*only, ",") {
		switch b = strings.TrimSpace(b); b {
		case "queue", "jobstore", "gateway", "router":
			benches[b] = true
		default:
			return fmt.Errorf("-only: unknown bench %q (want queue, jobstore, gateway, router)", b)
		}
	}
	rep := &report.Report{}
	if benches["queue"] {
		addrs, err := redisconn.ParseAddrs(os.Getenv("AIGW_REDIS_ADDRS"))
		if err != nil {
			return fmt.Errorf("AIGW_REDIS_ADDRS: %w (run `make up`, or source scripts/env.sh)", err)
		}
		cfg := queuebench.Config{
			Jobs: *jobs, Producers: *producers, Consumers: *consumers,
			PacedRate: *rate, PacedFor: *pacedFor, MemoryJobs: *memJobs,
			RedisAddrs: addrs, Linger: *linger, EnqueuePipelines: *pipelines, RunPrefix: fmt.Sprintf("bench%d", time.Now().Unix()),
		}
		masters := 0
		if rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs}); err == nil {
			masters, _ = redisconn.Masters(ctx, rdb)
			_ = rdb.Close()
		}
		fmt.Printf("queue: %d jobs, %d producers, %d consumers; paced %d jobs/s for %s; Redis Cluster %v (%d masters)\n",
			cfg.Jobs, cfg.Producers, cfg.Consumers, cfg.PacedRate, cfg.PacedFor, addrs, masters)
		type runner struct {
			system string
			run    func() (queuebench.Result, error)
		}
		for _, r := range []runner{
			{"aigw", func() (queuebench.Result, error) { return queuebench.RunAigw(ctx, cfg) }},
			{"asynq", func() (queuebench.Result, error) { return queuebench.RunAsynq(ctx, cfg, "asynq", 0) }},
			{"asynq-tuned", func() (queuebench.Result, error) {
				return queuebench.RunAsynq(ctx, cfg, "asynq-tuned", 10*time.Millisecond)
			}},
		} {
			if !strings.Contains(","+*systems+",", ","+r.system+",") {
				continue
			}
			slog.Info("running", "bench", "queue", "system", r.system)
			res, err := r.run()
			if err != nil {
				return fmt.Errorf("queue bench, %s: %w", r.system, err)
			}
			rep.Add("queue", res.System, "e2e_jobs_per_s", res.E2EJobsPerSec, "jobs/s")
			rep.Add("queue", res.System, "paced_1k_p50_ms", ms(res.PacedP50), "ms")
			rep.Add("queue", res.System, "paced_1k_p99_ms", ms(res.PacedP99), "ms")
			rep.Add("queue", res.System, "redis_cmds_per_job", res.CmdsPerJob, "commands")
			rep.Add("queue", res.System, "redis_bytes_per_queued_job", res.BytesPerJob, "bytes")
			if res.RoundTripsPerEnqueue > 0 {
				rep.Add("queue", res.System, "enqueue_round_trips", res.RoundTripsPerEnqueue, "round trips")
			}
		}
		fmt.Println()
		rep.Table(os.Stdout, "queue", []string{"aigw", "asynq", "asynq-tuned"})
		a, _ := rep.Get("queue", "aigw", "e2e_jobs_per_s")
		for _, peer := range []string{"asynq", "asynq-tuned"} {
			if p, ok := rep.Get("queue", peer, "e2e_jobs_per_s"); ok && p > 0 {
				rep.Add("queue", "aigw-vs-"+peer, "e2e_ratio", a/p, "x")
				fmt.Printf("aigw end-to-end throughput = %.2f× %s\n", a/p, peer)
			}
		}
		fmt.Println()
	}
	if benches["jobstore"] {
		uri := os.Getenv("AIGW_MONGO_URI")
		if uri == "" {
			return fmt.Errorf("AIGW_MONGO_URI is not set (run `make up`, or source scripts/env.sh)")
		}
		slog.Info("running", "bench", "jobstore")
		res, err := storebench.Run(ctx, uri, *storeJobs, *storeWorkers)
		if err != nil {
			return fmt.Errorf("jobstore bench: %w", err)
		}
		rep.Add("jobstore", "aigw", "creates_per_s", res.CreatesPerSec, "jobs/s")
		rep.Add("jobstore", "aigw", "transitions_per_s", res.TransPerSec, "transitions/s")
		fmt.Printf("jobstore: %d jobs, %d goroutines, server %s at %s\n", res.Jobs, res.Workers, res.Server, uri)
		rep.Table(os.Stdout, "jobstore", []string{"aigw"})
		fmt.Println()
	}
	if benches["router"] {
		if err := runRouter(ctx, rep, *routerFor, *routerConc); err != nil {
			return err
		}
	}
	if benches["gateway"] {
		if err := runGateway(ctx, rep, *gwFor, *gwConc); err != nil {
			return err
		}
	}
	if err := rep.Merge(*out); err != nil {
		return err
	}
	fmt.Println("figures written to", *out)
	return nil
}

func runGateway(ctx context.Context, rep *report.Report, d time.Duration, c int) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := gatewaybench.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	slog.Info("running", "bench", "gateway", "per_target", d, "concurrency", c)
	res, err := gatewaybench.Run(ctx, gatewaybench.Config{RepoRoot: root, Duration: d, Concurrency: c})
	if err != nil {
		return fmt.Errorf("gateway bench: %w", err)
	}
	rep.Add("gateway", "aigw", "direct_rps", res.DirectRPS, "req/s")
	rep.Add("gateway", "aigw", "proxied_rps", res.ProxiedRPS, "req/s")
	rep.Add("gateway", "aigw", "proxy_overhead_pct", res.OverheadPct, "%")
	rep.Add("gateway", "aigw", "direct_p99_ms", ms(res.DirectP99), "ms")
	rep.Add("gateway", "aigw", "proxied_p99_ms", ms(res.ProxiedP99), "ms")
	fmt.Printf("gateway: echo function, %d concurrent requests, %s per target\n", c, d)
	rep.Table(os.Stdout, "gateway", []string{"aigw"})
	fmt.Println()
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runRouter measures submits through the router function on MongoDB and Redis.
func runRouter(ctx context.Context, rep *report.Report, d time.Duration, conc int) error {
	addrs, err := redisconn.ParseAddrs(os.Getenv("AIGW_REDIS_ADDRS"))
	if err != nil {
		return fmt.Errorf("AIGW_REDIS_ADDRS: %w (run `make up`, or source scripts/env.sh)", err)
	}
	uri := os.Getenv("AIGW_MONGO_URI")
	slog.Info("running", "bench", "router")
	res, err := routerbench.Run(ctx, routerbench.Config{MongoURI: uri, RedisAddrs: addrs, Duration: d, Concurrency: conc})
	if err != nil {
		return fmt.Errorf("router bench: %w", err)
	}
	rep.Add("router", "aigw", "submit_rps", res.RPS, "submits/s")
	rep.Add("router", "aigw", "submit_p50_ms", ms(res.P50), "ms")
	rep.Add("router", "aigw", "submit_p99_ms", ms(res.P99), "ms")
	fmt.Printf("router: %d submits (%d errors) in %s, %d clients, MongoDB %s, Redis %v\n", res.Submits, res.Errors, d, conc, uri, addrs)
	rep.Table(os.Stdout, "router", []string{"aigw"})
	fmt.Println()
	return nil
}

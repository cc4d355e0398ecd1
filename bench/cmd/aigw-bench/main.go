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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aigw/aigw/bench/internal/benchdb"
	"github.com/aigw/aigw/bench/internal/cyclebench"
	"github.com/aigw/aigw/bench/internal/databench"
	"github.com/aigw/aigw/bench/internal/executorbench"
	"github.com/aigw/aigw/bench/internal/gatewaybench"
	"github.com/aigw/aigw/bench/internal/queuebench"
	"github.com/aigw/aigw/bench/internal/report"
	"github.com/aigw/aigw/bench/internal/routerbench"
	"github.com/aigw/aigw/bench/internal/storebench"
	"github.com/aigw/aigw/bench/internal/workerbench"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/objstore"
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
	only := flag.String("only", "queue,jobstore,api,worker,executors,gateway,cycle,fairness", "benches to run, comma-separated")
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
	gwTarget := flag.String("gateway-target", "router", "gateway bench: targets, comma-separated: router (auth+router on MongoDB and Redis, authenticated reads), echo (a no-op function: the proxy's own cost)")
	gwRounds := flag.Int("gateway-rounds", 5, "gateway bench: direct, proxied round pairs per workload (figures are medians)")
	apiFor := flag.Duration("api-for", 20*time.Second, "api bench: load time of each workload (submit, get)")
	apiConc := flag.Int("api-concurrency", 16, "api bench: concurrent clients")
	apiSync := flag.Int("api-sync-calls", 30, "api bench: synchronous echo calls (Prefer: wait) through the gateway, one at a time on an idle system (0: none)")
	workerJobs := flag.Int("worker-jobs", 2000, "worker bench: no-op jobs per run (the issue's 10,000 take about 3 minutes a run on aigw-devmongo)")
	workerCount := flag.Int("worker-workers", 2, "worker bench: in-process agents")
	workerSlots := flag.Int("worker-slots", 8, "worker bench: slots per agent")
	workerRuns := flag.Int("worker-runs", 3, "worker bench: runs per system (figures are medians)")
	workerSystems := flag.String("worker-systems", "aigw,asynq", "worker bench: systems to run, comma-separated (aigw: exec and warm rows and the cold start; aigw-warm: the warm rows only)")
	exWorkers := flag.Int("executors-workers", 2, "executors bench: agents and joined workers (each kind)")
	exSlots := flag.Int("executors-slots", 4, "executors bench: slots per worker")
	exDispatches := flag.Int("executors-dispatches", 200, "executors bench: jobs timed one at a time on an idle pool (dispatch overhead), per system")
	exJobs := flag.Int("executors-jobs", 1000, "executors bench: burst jobs per system (jobs/s)")
	cycleJobs := flag.String("cycle-jobs", "10000,100000", "cycle bench: stored job counts to time an idle orchestrator tick at, comma-separated, ascending")
	cycleTicks := flag.Int("cycle-ticks", 5, "cycle bench: ticks per job count (figures are medians)")
	dataBytes := flag.Int64("data-bytes", 128<<20, "data bench: size of the artifact uploaded and downloaded")
	dataRounds := flag.Int("data-rounds", 3, "data bench: rounds (figures are medians)")
	dataAsset := flag.Int64("data-asset-bytes", 64<<20, "data bench: size of the asset dispatched cold and cached")
	fairFor := flag.Duration("fairness-for", 60*time.Second, "fairness bench: length of the saturated run")
	fairSlots := flag.Int("fairness-slots", 8, "fairness bench: the pool's worker slots")
	fairRun := flag.Duration("fairness-run", 100*time.Millisecond, "fairness bench: mean run time of the heavy tenant's jobs (the light tenant's run twice as long)")
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
		case "fairness":
			benches[b] = true
		case "queue", "jobstore", "api", "worker", "executors", "gateway", "cycle", "data":
			benches[b] = true
		default:
			return fmt.Errorf("-only: unknown bench %q (want queue, jobstore, api, worker, executors, gateway, cycle, data)", b)
		}
	}
	rep := &report.Report{}
	if uri := os.Getenv("AIGW_MONGO_URI"); uri != "" && (benches["jobstore"] || benches["api"] || benches["worker"] || benches["executors"] || benches["gateway"] || benches["cycle"]) {
		benchdb.Sweep(ctx, uri) // what killed runs left
	}
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
			if res.IdlePickupP50 > 0 {
				rep.Add("queue", res.System, "idle_pickup_p50_ms", ms(res.IdlePickupP50), "ms (enqueue → taken, one consumer taking as a worker does, idle pool)")
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
		rep.Add("jobstore", "aigw", "transition_p50_ms", float64(res.TransP50.Microseconds())/1000, "ms")
		rep.Add("jobstore", "aigw", "transition_p99_ms", float64(res.TransP99.Microseconds())/1000, "ms")
		fmt.Printf("jobstore: %d jobs, %d goroutines, server %s at %s\n", res.Jobs, res.Workers, res.Server, uri)
		rep.Table(os.Stdout, "jobstore", []string{"aigw"})
		fmt.Println()
	}
	if benches["api"] {
		if err := runAPI(ctx, rep, *apiFor, *apiConc, *apiSync); err != nil {
			return err
		}
	}
	if benches["worker"] {
		wc := workerbench.Config{Jobs: *workerJobs, Workers: *workerCount, Slots: *workerSlots, Timeout: 10 * time.Minute}
		if err := runWorker(ctx, rep, wc, *workerRuns, *workerSystems); err != nil {
			return err
		}
	}
	if benches["executors"] {
		ec := executorbench.Config{Workers: *exWorkers, Slots: *exSlots, Dispatches: *exDispatches, Jobs: *exJobs, Timeout: 10 * time.Minute}
		if err := runExecutors(ctx, rep, ec); err != nil {
			return err
		}
	}
	if benches["gateway"] {
		if err := runGateway(ctx, rep, *gwFor, *gwConc, *gwRounds, *gwTarget); err != nil {
			return err
		}
	}
	if benches["cycle"] {
		if err := runCycle(ctx, rep, *cycleJobs, *cycleTicks); err != nil {
			return err
		}
	}
	if benches["fairness"] {
		if err := runFairness(ctx, rep, *fairFor, *fairSlots, *fairRun); err != nil {
			return err
		}
	}
	if benches["data"] {
		if err := runData(ctx, rep, *dataBytes, *dataRounds, *dataAsset); err != nil {
			return err
		}
	}
	if err := rep.Merge(*out); err != nil {
		return err
	}
	fmt.Println("figures written to", *out)
	return nil
}

// runData measures the data plane (issue 14) against the object store of
// scripts/env.sh (AIGW_S3_*): artifact upload and download MB/s through aigw
// beside a plain S3 client in the same run, and an asset's dispatch cost
// cold and cached.
func runData(ctx context.Context, rep *report.Report, size int64, rounds int, asset int64) error {
	cfg := objstore.ReadConfig(envconf.New(os.LookupEnv))
	if !cfg.Enabled() {
		return fmt.Errorf("AIGW_S3_ENDPOINT is not set (run `make up`, or source scripts/env.sh)")
	}
	slog.Info("running", "bench", "data", "bytes", size, "rounds", rounds)
	r, err := databench.Run(ctx, databench.Config{Store: cfg, FileBytes: size, Rounds: rounds, AssetSize: asset})
	if err != nil {
		return fmt.Errorf("data bench: %w", err)
	}
	rep.Add("data", "aigw", "artifact_upload_mb_per_s", r.UploadAigwMBps, "MB/s (worker artifact store: streamed once, SHA-256 on the way)")
	rep.Add("data", "plain-s3", "artifact_upload_mb_per_s", r.UploadPlainMBps, "MB/s (aws-sdk-go-v2 PutObject, defaults)")
	rep.Add("data", "aigw", "artifact_download_mb_per_s", r.DownloadAigwMBps, "MB/s (presigned URL of the job view)")
	rep.Add("data", "plain-s3", "artifact_download_mb_per_s", r.DownloadPlainMBps, "MB/s (aws-sdk-go-v2 GetObject)")
	rep.Add("data", "aigw", "upload_pct_of_plain", 100*r.UploadAigwMBps/r.UploadPlainMBps, "% (target >= 80)")
	rep.Add("data", "aigw", "download_pct_of_plain", 100*r.DownloadAigwMBps/r.DownloadPlainMBps, "% (target >= 80)")
	rep.Add("data", "aigw", "asset_cold_ms", r.AssetColdMS, fmt.Sprintf("ms (a %d MB asset downloaded on loopback and checked)", asset/1e6))
	rep.Add("data", "aigw", "asset_cached_us", r.AssetCachedMS*1e3, "µs (the same asset, cached)")
	fmt.Printf("data: %d MB artifact, %d rounds (medians), store %s\n", size/1e6, rounds, cfg.Endpoint)
	rep.Table(os.Stdout, "data", []string{"aigw", "plain-s3"})
	fmt.Println()
	return nil
}

// runGateway measures requests through the gateway against the function
// called directly (issue 5). The router target's GET /v1/jobs/{id} gives the
// issue's rows (direct_rps, proxied_rps, proxy_overhead_pct, …); the other
// workloads get the same metrics prefixed with their key (get_algorithm_…, echo_…).
func runGateway(ctx context.Context, rep *report.Report, d time.Duration, c, rounds int, targets string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := gatewaybench.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	for _, target := range strings.Split(targets, ",") {
		target = strings.TrimSpace(target)
		slog.Info("running", "bench", "gateway", "target", target, "per_round", d, "rounds", rounds, "concurrency", c)
		fmt.Printf("gateway (%s): %d concurrent requests, %d rounds of %s per target, direct and proxied alternating\n", target, c, rounds, d)
		results, err := gatewaybench.Run(ctx, gatewaybench.Config{RepoRoot: root, Duration: d, Concurrency: c, Rounds: rounds,
			Target: target, MongoURI: os.Getenv("AIGW_MONGO_URI"), RedisAddrs: os.Getenv("AIGW_REDIS_ADDRS"), Progress: os.Stdout})
		if err != nil {
			return fmt.Errorf("gateway bench (%s): %w", target, err)
		}
		for _, res := range results {
			prefix := res.Key + "_"
			if res.Key == "get_job" {
				prefix = ""
			}
			what := fmt.Sprintf("%s, %s target, c=%d, median of %d", res.Workload, target, c, rounds)
			rep.Add("gateway", "aigw", prefix+"direct_rps", res.DirectRPS, "req/s ("+what+")")
			rep.Add("gateway", "aigw", prefix+"proxied_rps", res.ProxiedRPS, "req/s ("+what+")")
			rep.Add("gateway", "aigw", prefix+"proxy_overhead_pct", res.OverheadPct, "% (median of paired rounds)")
			rep.Add("gateway", "aigw", prefix+"direct_p99_ms", ms(res.DirectP99), "ms")
			rep.Add("gateway", "aigw", prefix+"proxied_p99_ms", ms(res.ProxiedP99), "ms")
			verdict := "meets"
			if res.OverheadPct > 15 {
				verdict = "misses"
			}
			fmt.Printf("%s: proxy overhead %.1f %% %s the 15 %% target\n", res.Workload, res.OverheadPct, verdict)
		}
	}
	rep.Table(os.Stdout, "gateway", []string{"aigw"})
	fmt.Println()
	return nil
}

// runCycle times an idle orchestrator tick with many stored jobs (issue 10, item 17).
func runCycle(ctx context.Context, rep *report.Report, jobs string, ticks int) error {
	var sizes []int
	for _, f := range strings.Split(jobs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || (len(sizes) > 0 && n < sizes[len(sizes)-1]) {
			return fmt.Errorf("-cycle-jobs: %q is not a list of ascending job counts (e.g. 10000,100000)", jobs)
		}
		sizes = append(sizes, n)
	}
	addrs, uri, err := servers()
	if err != nil {
		return err
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs})
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	server := workerbench.MongoServer(ctx, uri)
	slog.Info("running", "bench", "cycle", "jobs", sizes, "ticks", ticks)
	fmt.Printf("cycle: idle orchestrator tick (POST /tick work) with %v finished jobs stored, median of %d ticks; MongoDB %s at %s\n",
		sizes, ticks, server, uri)
	results, err := cyclebench.Run(ctx, cyclebench.Config{MongoURI: uri, Redis: rdb, Sizes: sizes, Ticks: ticks, Progress: os.Stdout})
	if err != nil {
		return fmt.Errorf("cycle bench: %w", err)
	}
	for _, r := range results {
		rep.Add("cycle", "aigw", fmt.Sprintf("tick_ms_at_%d_jobs", r.Jobs), ms(r.Median), "ms (median, "+server+")")
	}
	rep.Table(os.Stdout, "cycle", []string{"aigw"})
	fmt.Println()
	return nil
}

// redisAddrs reads AIGW_REDIS_ADDRS, the Redis Cluster the benches run on.
func redisAddrs() ([]string, error) {
	addrs, err := redisconn.ParseAddrs(os.Getenv("AIGW_REDIS_ADDRS"))
	if err != nil {
		return nil, fmt.Errorf("AIGW_REDIS_ADDRS: %w (run `make up`, or source scripts/env.sh)", err)
	}
	return addrs, nil
}

// servers reads AIGW_REDIS_ADDRS and AIGW_MONGO_URI, both required.
func servers() ([]string, string, error) {
	addrs, err := redisAddrs()
	if err != nil {
		return nil, "", err
	}
	uri := os.Getenv("AIGW_MONGO_URI")
	if uri == "" {
		return nil, "", fmt.Errorf("AIGW_MONGO_URI is not set (run `make up`, or source scripts/env.sh)")
	}
	return addrs, uri, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runAPI measures the public API through the router function on MongoDB and
// Redis (issue 4): submits, then GET /v1/jobs/{id}, next to the queue-only
// ceiling when the queue bench ran in the same invocation.
func runAPI(ctx context.Context, rep *report.Report, d time.Duration, conc, syncCalls int) error {
	addrs, err := redisAddrs()
	if err != nil {
		return err
	}
	uri := os.Getenv("AIGW_MONGO_URI")
	slog.Info("running", "bench", "api", "per_workload", d)
	res, err := routerbench.Run(ctx, routerbench.Config{MongoURI: uri, RedisAddrs: addrs, Duration: d, Concurrency: conc})
	if err != nil {
		return fmt.Errorf("api bench: %w", err)
	}
	server := "MongoDB " + uri
	if strings.Contains(uri, "127.0.0.1:27018") || strings.Contains(uri, "localhost:27018") {
		server = "aigw-devmongo (FerretDB 1.24, SQLite)"
	}
	rep.Add("api", "aigw", "submit_rps", res.Submit.RPS, "submits/s ("+server+")")
	rep.Add("api", "aigw", "submit_p50_ms", ms(res.Submit.P50), "ms")
	rep.Add("api", "aigw", "submit_p99_ms", ms(res.Submit.P99), "ms")
	rep.Add("api", "aigw", "get_rps", res.Get.RPS, "req/s ("+server+")")
	rep.Add("api", "aigw", "get_p99_ms", ms(res.Get.P99), "ms")
	if q, ok := rep.Get("queue", "aigw", "e2e_jobs_per_s"); ok {
		rep.Add("api", "aigw", "queue_ceiling_jobs_per_s", q, "jobs/s (queue bench, same run)")
	}
	fmt.Printf("api: %d submits (%d errors), %d gets (%d errors), %s each, %d clients, %s, Redis %v\n",
		res.Submit.Requests, res.Submit.Errors, res.Get.Requests, res.Get.Errors, d, conc, server, addrs)
	if syncCalls > 0 {
		if err := runAPISync(ctx, rep, syncCalls, server); err != nil {
			return err
		}
	}
	rep.Table(os.Stdout, "api", []string{"aigw"})
	fmt.Println()
	return nil
}

// runAPISync times echo jobs submitted with Prefer: wait through the gateway
// to a worker, one at a time on an idle system (issue 12): the whole call and
// where its time goes, from the job record's timestamps.
func runAPISync(ctx context.Context, rep *report.Report, calls int, server string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := gatewaybench.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	slog.Info("running", "bench", "api", "workload", "sync echo", "calls", calls)
	res, err := gatewaybench.RunSync(ctx, gatewaybench.SyncConfig{RepoRoot: root, Calls: calls,
		MongoURI: os.Getenv("AIGW_MONGO_URI"), RedisAddrs: os.Getenv("AIGW_REDIS_ADDRS"), Progress: os.Stdout})
	if err != nil {
		return fmt.Errorf("api bench, sync echo: %w", err)
	}
	what := fmt.Sprintf("median of %d calls one at a time, echo runtime %s, %s", res.Calls, res.Runtime, server)
	rep.Add("api", "aigw", "idle_pickup_p50_ms", ms(res.Pickup), "ms (queued_at → started_at, "+what+")")
	rep.Add("api", "aigw", "sync_echo_p50_ms", ms(res.Echo), "ms (POST …/jobs with Prefer: wait through the gateway → 200, "+what+")")
	rep.Add("api", "aigw", "sync_echo_submit_p50_ms", ms(res.Submit), "ms (sent → queued_at: gateway, auth, router, record insert)")
	rep.Add("api", "aigw", "sync_echo_run_p50_ms", ms(res.Run), "ms (started_at → finished_at: the run and its result recorded)")
	rep.Add("api", "aigw", "sync_echo_reply_p50_ms", ms(res.Reply), "ms (finished_at → answer read: end event, record read, reply)")
	for _, t := range []struct {
		name   string
		got    time.Duration
		target float64
	}{{"idle pick-up p50", res.Pickup, 5}, {"sync echo p50", res.Echo, 30}} {
		verdict := "meets"
		if ms(t.got) > t.target {
			verdict = "misses"
		}
		fmt.Printf("%s %.1f ms %s the %.0f ms target\n", t.name, ms(t.got), verdict, t.target)
	}
	return nil
}

// runExecutors runs no-op exec jobs through remote executors (joined
// workers speaking the executor API over HTTP) and worker agents in the
// same run and records both.
func runExecutors(ctx context.Context, rep *report.Report, cfg executorbench.Config) error {
	addrs, uri, err := servers()
	if err != nil {
		return err
	}
	cfg.RedisAddrs, cfg.MongoURI = addrs, uri
	tmp, err := os.MkdirTemp("", "aigw-bench-noop-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	var noop string
	if cfg.Noop, _, noop, err = workerbench.BuildNoop(ctx, tmp); err != nil {
		return err
	}
	noop, _, _ = strings.Cut(noop, ";")
	server := workerbench.MongoServer(ctx, cfg.MongoURI)
	fmt.Printf("executors: no-op exec jobs (%s), %d agents and %d joined workers (executor API over HTTP on loopback) × %d slots; dispatch: %d jobs one at a time on an idle pool, enqueue → process started; jobs/s: a burst of %d; MongoDB %s, Redis %v\n",
		noop, cfg.Workers, cfg.Workers, cfg.Slots, cfg.Dispatches, cfg.Jobs, server, cfg.RedisAddrs)
	slog.Info("running", "bench", "executors")
	res, err := executorbench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("executors bench: %w", err)
	}
	var systems []string
	for _, r := range res {
		systems = append(systems, r.System)
		rep.Add("executors", r.System, "dispatch_p50_ms", ms(r.P50), "ms (enqueued on an idle pool → process started)")
		rep.Add("executors", r.System, "dispatch_p99_ms", ms(r.P99), "ms")
		rep.Add("executors", r.System, "jobs_per_s", r.JobsPerSec, fmt.Sprintf("jobs/s (burst of %d no-op jobs)", r.Jobs))
	}
	a, _ := rep.Get("executors", executorbench.SystemAgent, "dispatch_p99_ms")
	e, _ := rep.Get("executors", executorbench.SystemExecutor, "dispatch_p99_ms")
	if a > 0 {
		rep.Add("executors", executorbench.SystemExecutor, "dispatch_p99_vs_agent", e/a, "× the agent's p99 (target ≤ 2)")
	}
	rep.Table(os.Stdout, "executors", systems)
	verdict := "meets"
	if a <= 0 || e > 2*a {
		verdict = "misses"
	}
	fmt.Printf("executor dispatch p99 %.1f ms vs agent %.1f ms: %s the ≤ 2× target\n\n", e, a, verdict)
	return nil
}

// runWorker runs no-op exec jobs through in-process worker agents (and the
// same process per task through asynq) runs times and records the medians.
func runWorker(ctx context.Context, rep *report.Report, cfg workerbench.Config, runs int, systems string) error {
	addrs, uri, err := servers()
	if err != nil {
		return err
	}
	cfg.RedisAddrs, cfg.MongoURI = addrs, uri
	tmp, err := os.MkdirTemp("", "aigw-bench-noop-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	var noop string
	if cfg.Noop, cfg.ServeNoop, noop, err = workerbench.BuildNoop(ctx, tmp); err != nil {
		return err
	}
	runs = max(runs, 1)
	server := workerbench.MongoServer(ctx, cfg.MongoURI)
	fmt.Printf("worker: %d no-op exec jobs (%s) through %d agents × %d slots, median of %d runs; MongoDB %s at %s, Redis %v\n",
		cfg.Jobs, noop, cfg.Workers, cfg.Slots, runs, server, cfg.MongoURI, addrs)
	var ran []string
	for _, system := range []string{"aigw", "aigw-warm", "asynq"} {
		// "aigw" runs both of aigw's rows; "aigw-warm" the warm ones alone.
		if !strings.Contains(","+systems+",", ","+system+",") &&
			!(system == "aigw-warm" && strings.Contains(","+systems+",", ",aigw,")) {
			continue
		}
		var all []workerbench.Result
		for i := range runs {
			slog.Info("running", "bench", "worker", "system", system, "run", i+1, "jobs", cfg.Jobs)
			var res workerbench.Result
			switch system {
			case "aigw":
				res, err = workerbench.RunAigw(ctx, cfg)
			case "aigw-warm":
				res, err = workerbench.RunAigwWarm(ctx, cfg)
			default:
				res, err = workerbench.RunAsynq(ctx, cfg)
			}
			if err != nil {
				return fmt.Errorf("worker bench, %s: %w", system, err)
			}
			fmt.Printf("  %s run %d: %.1f jobs/s, dispatch p50 %.2f ms p99 %.2f ms", system, i+1, res.JobsPerSec, ms(res.P50), ms(res.P99))
			if system != "asynq" {
				fmt.Printf(" (excl. MongoDB p50 %.2f ms p99 %.2f ms; MongoDB part p50 %.2f ms)", ms(res.ExclStoreP50), ms(res.ExclStoreP99), ms(res.StoreP50))
			}
			fmt.Println()
			all = append(all, res)
		}
		med := func(f func(workerbench.Result) float64) float64 {
			v := make([]float64, len(all))
			for i, r := range all {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		unit := fmt.Sprintf("jobs/s (%d jobs", cfg.Jobs)
		if system != "asynq" {
			unit += ", " + server
		}
		if system == "aigw-warm" {
			// The warm runtime's rows, beside aigw's exec rows.
			rep.Add("worker", "aigw", "warm_jobs_per_s", med(func(r workerbench.Result) float64 { return r.JobsPerSec }),
				unit+", serve runtime, warm processes)")
			rep.Add("worker", "aigw", "warm_dispatch_overhead_p50_ms", med(func(r workerbench.Result) float64 { return ms(r.P50) }),
				"ms (taken from the queue → run message to the warm process)")
			rep.Add("worker", "aigw", "warm_dispatch_overhead_p99_ms", med(func(r workerbench.Result) float64 { return ms(r.P99) }), "ms")
			rep.Add("worker", "aigw", "warm_dispatch_overhead_excl_store_p50_ms", med(func(r workerbench.Result) float64 { return ms(r.ExclStoreP50) }), "ms")
			continue
		}
		rep.Add("worker", system, "jobs_per_s", med(func(r workerbench.Result) float64 { return r.JobsPerSec }), unit+")")
		rep.Add("worker", system, "jobs", float64(cfg.Jobs), "jobs")
		rep.Add("worker", system, "dispatch_overhead_p50_ms", med(func(r workerbench.Result) float64 { return ms(r.P50) }), "ms")
		rep.Add("worker", system, "dispatch_overhead_p99_ms", med(func(r workerbench.Result) float64 { return ms(r.P99) }), "ms")
		if system == "aigw" {
			rep.Add("worker", system, "dispatch_overhead_excl_store_p50_ms", med(func(r workerbench.Result) float64 { return ms(r.ExclStoreP50) }), "ms")
			rep.Add("worker", system, "dispatch_overhead_excl_store_p99_ms", med(func(r workerbench.Result) float64 { return ms(r.ExclStoreP99) }), "ms")
			rep.Add("worker", system, "dispatch_store_p50_ms", med(func(r workerbench.Result) float64 { return ms(r.StoreP50) }), "ms")
		}
		ran = append(ran, system)
	}
	if strings.Contains(","+systems+",", ",aigw,") {
		if err := coldStart(ctx, rep, cfg, tmp); err != nil {
			return err
		}
	}
	rep.Table(os.Stdout, "worker", ran)
	verdict := func(ok bool) string {
		if ok {
			return "meets"
		}
		return "misses"
	}
	if p99, ok := rep.Get("worker", "aigw", "dispatch_overhead_p99_ms"); ok {
		fmt.Printf("aigw dispatch overhead p99 %.2f ms %s the 20 ms target\n", p99, verdict(p99 <= 20))
	}
	if p99, ok := rep.Get("worker", "aigw", "warm_dispatch_overhead_p99_ms"); ok {
		fmt.Printf("aigw warm dispatch overhead p99 %.2f ms %s the 20 ms target\n", p99, verdict(p99 <= 20))
	}
	warm, ok1 := rep.Get("worker", "aigw", "warm_jobs_per_s")
	asynq, ok2 := rep.Get("worker", "asynq", "jobs_per_s")
	if ok1 && ok2 && asynq > 0 {
		fmt.Printf("aigw warm %.1f jobs/s = %.1f× asynq's exec %.1f jobs/s: %s the 2× target\n", warm, warm/asynq, asynq, verdict(warm >= 2*asynq))
	}
	fmt.Println()
	return nil
}

// coldStart measures the warm runtime's cold start: of matmul where python3
// has torch, else of echo (Go SDK).
func coldStart(ctx context.Context, rep *report.Report, cfg workerbench.Config, tmp string) error {
	w, ok := workerbench.MatmulWarm(ctx)
	if !ok {
		slog.Info("no python3 with torch (scripts/python-torch.sh): cold start of echo instead of matmul")
		var err error
		if w, err = workerbench.EchoWarm(ctx, tmp); err != nil {
			return err
		}
	}
	res, err := workerbench.MeasureColdStart(ctx, cfg, w, 3)
	if err != nil {
		return fmt.Errorf("worker bench, cold start: %w", err)
	}
	fmt.Printf("  cold start of %s: %d ms (median of %d); job through the queue: cold %d ms, then warm %d ms\n",
		w.What, res.ColdStart.Milliseconds(), res.Runs, res.ColdJob.Milliseconds(), res.WarmJob.Milliseconds())
	rep.Add("worker", "aigw", "cold_start_ms", float64(res.ColdStart.Milliseconds()), "ms (cold_start_ms of "+w.What+")")
	rep.Add("worker", "aigw", "warm_job_ms", ms(res.WarmJob), "ms (enqueue → outcome recorded, "+w.What+", warm)")
	return nil
}

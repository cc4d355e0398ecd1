// Package gatewaybench measures what aigw-gateway's /function/{name}/… proxy
// costs, as issue 5 defines it: requests/s and p99 latency of a function called
// directly and through the gateway, in the same run, at the same concurrency and
// duration, alternating direct and proxied rounds (D,P,D,P,…) and reporting the
// medians.
//
// Two targets:
//
//   - router (the default): the real system. The gateway runs the auth and router
//     functions, deployed through the OpenFaaS API (go-sdk) with their secrets as
//     make up writes them, on a fresh MongoDB database; the direct target is a
//     second router process with the same environment and secrets. The workloads
//     are authenticated reads: GET /v1/jobs/{id} of a queued job (a MongoDB get
//     by _id and a Redis queue-position round trip) and GET /v1/algorithms/echo.
//   - echo: the gateway's test function, a no-op echo. It isolates the proxy's
//     own cost (on a small machine the extra HTTP hop dominates it).
package gatewaybench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/bench/internal/loadgen"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"

	"github.com/aigw/aigw/internal/algorithm"
)

// Targets of Config.Target.
const (
	TargetRouter = "router"
	TargetEcho   = "echo"
)

// Config is one bench run.
type Config struct {
	// RepoRoot is the directory holding go.work (the binaries are built from it).
	RepoRoot    string
	Duration    time.Duration // per round and target
	Concurrency int
	// Rounds is how many direct, proxied pairs each workload runs (default 3);
	// the figures are their medians.
	Rounds int
	// Target is TargetRouter (default) or TargetEcho.
	Target string
	// MongoURI and RedisAddrs (comma-separated) are the servers of the router target.
	MongoURI, RedisAddrs string
	// Progress, when set, gets a line per round.
	Progress io.Writer
}

// Sample is one timed round against one target.
type Sample struct {
	RPS float64
	P99 time.Duration
}

// Result is one workload: its rounds and their medians.
type Result struct {
	// Workload names the request, e.g. "GET /v1/jobs/{id}".
	Workload string
	// Key is a short name for the workload ("get_job", "get_algorithm", "echo").
	Key             string
	Direct, Proxied []Sample
	// Medians of the rounds.
	DirectRPS, ProxiedRPS float64
	DirectP99, ProxiedP99 time.Duration
	// OverheadPct is the throughput lost to the proxy, in percent of direct:
	// the median over rounds of each round's pair (direct, then proxied right
	// after it), so that the machine's load drifting between rounds cancels out.
	OverheadPct float64
}

// FindRepoRoot walks up from dir to the directory holding go.work.
func FindRepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

// workload is what the load generator sends.
type workload struct {
	name, key       string
	direct, proxied string // URLs
	header          http.Header
}

// Run builds the binaries, starts the gateway and the direct target, and
// measures each workload of cfg.Target.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg.Rounds = max(cfg.Rounds, 1)
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	dir, err := os.MkdirTemp("", "aigw-gatewaybench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var loads []workload
	var cleanup func()
	switch cfg.Target {
	case TargetEcho:
		loads, cleanup, err = setupEcho(ctx, cfg, dir)
	case TargetRouter, "":
		loads, cleanup, err = setupRouter(ctx, cfg, dir)
	default:
		return nil, fmt.Errorf("unknown target %q (want %s or %s)", cfg.Target, TargetRouter, TargetEcho)
	}
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, w := range loads {
		r, err := measureWorkload(ctx, cfg, w)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// measureWorkload warms both targets up, then runs cfg.Rounds direct, proxied pairs.
func measureWorkload(ctx context.Context, cfg Config, w workload) (Result, error) {
	for _, u := range []string{w.direct, w.proxied} {
		if _, err := measure(ctx, u, w.header, cfg.Concurrency, time.Second); err != nil {
			return Result{}, err
		}
	}
	res := Result{Workload: w.name, Key: w.key}
	for i := range cfg.Rounds {
		for _, t := range []struct {
			name string
			url  string
			into *[]Sample
		}{{"direct", w.direct, &res.Direct}, {"proxied", w.proxied, &res.Proxied}} {
			m, err := measure(ctx, t.url, w.header, cfg.Concurrency, cfg.Duration)
			if err != nil {
				return Result{}, err
			}
			*t.into = append(*t.into, m)
			fmt.Fprintf(cfg.Progress, "  %s round %d %-7s %8.0f req/s  p99 %6.2f ms\n",
				w.name, i+1, t.name, m.RPS, float64(m.P99.Microseconds())/1000)
		}
	}
	res.DirectRPS, res.DirectP99 = medians(res.Direct)
	res.ProxiedRPS, res.ProxiedP99 = medians(res.Proxied)
	res.OverheadPct = pairedOverhead(res.Direct, res.Proxied)
	return res, nil
}

// pairedOverhead is the median of the rounds' (direct − proxied) / direct, in percent.
func pairedOverhead(direct, proxied []Sample) float64 {
	var pct []float64
	for i := range min(len(direct), len(proxied)) {
		if direct[i].RPS > 0 {
			pct = append(pct, (direct[i].RPS-proxied[i].RPS)/direct[i].RPS*100)
		}
	}
	if len(pct) == 0 {
		return 0
	}
	slices.Sort(pct)
	return pct[len(pct)/2]
}

func medians(s []Sample) (float64, time.Duration) {
	rps := make([]float64, len(s))
	p99 := make([]time.Duration, len(s))
	for i := range s {
		rps[i], p99[i] = s[i].RPS, s[i].P99
	}
	slices.Sort(rps)
	slices.Sort(p99)
	return rps[len(rps)/2], p99[len(p99)/2]
}

// build compiles packages into binDir, each named after its directory.
func build(ctx context.Context, root, binDir string, pkgs ...string) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// cleanups runs functions in reverse order.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }
func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// gateway is a started aigw-gateway.
type gateway struct {
	url        string
	user, pass string
	sdk        *sdk.Client
}

func startGateway(ctx context.Context, dir, binDir string, cl *cleanups) (*gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "state")
	cmd := exec.Command(filepath.Join(binDir, "aigw-gateway"))
	// No Redis: async invocations and cron are not benchmarked, and their idle
	// consumers would take CPU from the 2 cores the bench runs on.
	cmd.Env = append(os.Environ(),
		"AIGW_GATEWAY_ADDR=127.0.0.1:"+strconv.Itoa(port), "AIGW_GATEWAY_BIN_DIR="+binDir,
		"AIGW_GATEWAY_STATE_DIR="+state, "AIGW_LOG_LEVEL=error", "AIGW_REDIS_ADDRS=")
	cmd.Stderr = os.Stderr
	if err := start(cmd); err != nil {
		return nil, err
	}
	cl.add(func() { stop(cmd) })
	g := &gateway{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := waitOK(ctx, g.url+"/healthz", nil, 15*time.Second); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	user, err := os.ReadFile(filepath.Join(state, "auth", "basic-auth-user"))
	if err != nil {
		return nil, err
	}
	pass, err := os.ReadFile(filepath.Join(state, "auth", "basic-auth-password"))
	if err != nil {
		return nil, err
	}
	g.user, g.pass = strings.TrimSpace(string(user)), strings.TrimSpace(string(pass))
	u, err := url.Parse(g.url)
	if err != nil {
		return nil, err
	}
	g.sdk = sdk.NewClient(u, &sdk.BasicAuth{Username: g.user, Password: g.pass}, &http.Client{Timeout: time.Minute})
	return g, nil
}

func (g *gateway) deploy(ctx context.Context, d types.FunctionDeployment) error {
	status, err := g.sdk.Deploy(ctx, d)
	if err != nil {
		return fmt.Errorf("deploying %s: %w", d.Service, err)
	}
	if status >= 300 {
		return fmt.Errorf("deploying %s: gateway answered %d", d.Service, status)
	}
	return nil
}

// waitReady waits for a ready replica of the function, then for path to answer 200 through the gateway.
func (g *gateway) waitReady(ctx context.Context, name, path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := g.sdk.GetFunction(ctx, name, "")
		if err == nil && st.AvailableReplicas >= 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("function %s: no ready replica after 30s (last error: %v)", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return waitOK(ctx, g.url+"/function/"+name+path, nil, 30*time.Second)
}

// setupEcho: the gateway's test function behind the gateway, and a second
// process of it as the direct target.
func setupEcho(ctx context.Context, cfg Config, dir string) ([]workload, func(), error) {
	var cl cleanups
	bin := filepath.Join(dir, "bin")
	if err := build(ctx, cfg.RepoRoot, bin, "./gateway/internal/testfn", "./gateway/cmd/aigw-gateway"); err != nil {
		return nil, cl.run, err
	}
	fnPort, err := freePort()
	if err != nil {
		return nil, cl.run, err
	}
	direct := exec.Command(filepath.Join(bin, "testfn"))
	direct.Env = append(os.Environ(), "PORT="+strconv.Itoa(fnPort))
	if err := start(direct); err != nil {
		return nil, cl.run, err
	}
	cl.add(func() { stop(direct) })
	directURL := fmt.Sprintf("http://127.0.0.1:%d", fnPort)
	if err := waitOK(ctx, directURL+"/_/health", nil, 15*time.Second); err != nil {
		return nil, cl.run, fmt.Errorf("test function: %w", err)
	}
	g, err := startGateway(ctx, dir, bin, &cl)
	if err != nil {
		return nil, cl.run, err
	}
	if err := g.deploy(ctx, types.FunctionDeployment{Service: "benchecho", Image: "ghcr.io/aigw/testfn:bench"}); err != nil {
		return nil, cl.run, err
	}
	if err := g.waitReady(ctx, "benchecho", "/_/health"); err != nil {
		return nil, cl.run, err
	}
	return []workload{{name: "GET / (echo)", key: "echo", direct: directURL + "/", proxied: g.url + "/function/benchecho/"}}, cl.run, nil
}

// stack is the system as make up runs it, on a fresh MongoDB database and a
// pool of its own: the gateway with the auth and router functions deployed
// through the OpenFaaS API with their secrets, a client token (jobs:read,
// jobs:write), and the echo algorithm registered in the pool with an operator
// token.
type stack struct {
	g            *gateway
	bin          string
	db, pool     string
	secrets      string // directory of the secrets' files
	routerEnv    map[string]string
	api          string      // the router through the gateway
	hdr          http.Header // the client's Authorization
	echo         *algorithm.Definition
	secretValues map[string]string
}

// startStack builds the binaries (and extra packages) into dir/bin and starts
// the stack; cl gets what undoes it.
func startStack(ctx context.Context, cfg Config, dir string, cl *cleanups, extra ...string) (*stack, error) {
	if cfg.MongoURI == "" || cfg.RedisAddrs == "" {
		return nil, errors.New("the router target needs AIGW_MONGO_URI and AIGW_REDIS_ADDRS (source scripts/env.sh)")
	}
	st := &stack{bin: filepath.Join(dir, "bin")}
	if err := build(ctx, cfg.RepoRoot, st.bin, append([]string{"./gateway/cmd/aigw-gateway", "./functions/cmd/auth", "./functions/cmd/router"}, extra...)...); err != nil {
		return nil, err
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	st.db = "bench_gw_" + run
	st.pool = "benchgw-" + run
	cl.add(func() { dropDB(cfg.MongoURI, st.db) })
	cl.add(func() { forgetPool(cfg.RedisAddrs, st.pool) })

	// Secrets, as scripts/up.sh writes them.
	st.secrets = filepath.Join(dir, "secrets")
	if err := os.Mkdir(st.secrets, 0o700); err != nil {
		return nil, err
	}
	key, err := exec.CommandContext(ctx, filepath.Join(st.bin, "auth"), "genkey").Output()
	if err != nil {
		return nil, fmt.Errorf("auth genkey: %w", err)
	}
	st.secretValues = map[string]string{
		"aigw-jwt-signing-key": strings.TrimRight(string(key), "\n"),
		"aigw-admin-token":     "bench-admin-" + run,
		"aigw-mongo-uri":       cfg.MongoURI,
		"aigw-redis-addrs":     cfg.RedisAddrs,
		"aigw-redis-password":  os.Getenv("AIGW_REDIS_PASSWORD"),
	}
	for name, v := range st.secretValues {
		if err := os.WriteFile(filepath.Join(st.secrets, name), []byte(v), 0o600); err != nil {
			return nil, err
		}
	}

	g, err := startGateway(ctx, dir, st.bin, cl)
	if err != nil {
		return nil, err
	}
	st.g = g
	for name, v := range st.secretValues {
		if status, err := g.sdk.CreateSecret(ctx, types.Secret{Name: name, Value: v}); err != nil || status >= 300 {
			return nil, fmt.Errorf("secret %s: %d %v", name, status, err)
		}
	}
	common := map[string]string{"AIGW_LOG_LEVEL": "info", "AIGW_ISSUER": "aigw", "AIGW_AUDIENCE": "aigw-api", "AIGW_MONGO_DB": st.db}
	authEnv := maps(common, map[string]string{"AIGW_TOKEN_TTL": "1h"})
	st.routerEnv = maps(common, map[string]string{
		"AIGW_JWKS_URL":       g.url + "/function/auth/.well-known/jwks.json",
		"AIGW_RATE_LIMIT_RPS": "0", // no rate limit in the bench
	})
	if err := g.deploy(ctx, types.FunctionDeployment{Service: "auth", Image: "ghcr.io/aigw/auth:bench",
		Secrets: []string{"aigw-mongo-uri", "aigw-jwt-signing-key", "aigw-admin-token"}, EnvVars: authEnv}); err != nil {
		return nil, err
	}
	if err := g.deploy(ctx, types.FunctionDeployment{Service: "router", Image: "ghcr.io/aigw/router:bench",
		Secrets: []string{"aigw-redis-addrs", "aigw-redis-password", "aigw-mongo-uri"}, EnvVars: st.routerEnv}); err != nil {
		return nil, err
	}
	if err := g.waitReady(ctx, "auth", "/.well-known/jwks.json"); err != nil {
		return nil, err
	}
	if err := g.waitReady(ctx, "router", "/_/health"); err != nil {
		return nil, err
	}

	// A client with every client scope, and its token.
	cc := exec.CommandContext(ctx, filepath.Join(st.bin, "auth"), "create-client", "-name", "bench", "-tenant", "bench",
		"-scopes", "jobs:read,jobs:write")
	cc.Env = append(os.Environ(), "AIGW_MONGO_URI="+cfg.MongoURI, "AIGW_MONGO_DB="+st.db)
	var stderr bytes.Buffer
	cc.Stderr = &stderr
	outb, err := cc.Output()
	if err != nil {
		return nil, fmt.Errorf("auth create-client: %w\n%s", err, stderr.Bytes())
	}
	creds := map[string]string{}
	for _, line := range strings.Split(string(outb), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			creds[k] = v
		}
	}
	token, err := getToken(ctx, g.url, creds["AIGW_CLIENT_ID"], creds["AIGW_CLIENT_SECRET"])
	if err != nil {
		return nil, err
	}
	st.hdr = http.Header{"Authorization": {"Bearer " + token}}

	// The echo algorithm in this run's pool.
	st.echo, err = algorithm.LoadFile(filepath.Join(cfg.RepoRoot, "algorithms", "echo", algorithm.DefinitionFile))
	if err != nil {
		return nil, err
	}
	st.echo.Pool = st.pool
	st.api = g.url + "/function/router"
	// Registering is an operator action: an operator token from the admin token.
	var op struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := call(ctx, http.MethodPost, g.url+"/function/auth/admin/token", http.Header{"Authorization": {"Bearer " + st.secretValues["aigw-admin-token"]}},
		nil, &op, http.StatusOK); err != nil {
		return nil, fmt.Errorf("operator token: %w", err)
	}
	opHdr := http.Header{"Authorization": {"Bearer " + op.AccessToken}}
	if _, err := call(ctx, http.MethodPut, st.api+"/v1/algorithms/echo", opHdr, st.echo, nil, http.StatusCreated, http.StatusOK); err != nil {
		return nil, fmt.Errorf("registering echo: %w", err)
	}
	return st, nil
}

// setupRouter: the stack (see startStack), a second router process as the
// direct target, and one job submitted to the echo algorithm, which no worker
// serves.
func setupRouter(ctx context.Context, cfg Config, dir string) ([]workload, func(), error) {
	var cl cleanups
	st, err := startStack(ctx, cfg, dir, &cl)
	if err != nil {
		return nil, cl.run, err
	}

	// The direct target: the same binary, environment and secrets, as the
	// gateway would start it (its base environment, the envVars, the secrets
	// directory), on its own port.
	port, err := freePort()
	if err != nil {
		return nil, cl.run, err
	}
	direct := exec.Command(filepath.Join(st.bin, "router"))
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "USER"} {
		if v, ok := os.LookupEnv(k); ok {
			direct.Env = append(direct.Env, k+"="+v)
		}
	}
	for k, v := range st.routerEnv {
		direct.Env = append(direct.Env, k+"="+v)
	}
	direct.Env = append(direct.Env, "AIGW_SECRETS_DIR="+st.secrets, "AIGW_FUNCTION_NAME=router", "PORT="+strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(dir, "direct-router.log"))
	if err != nil {
		return nil, cl.run, err
	}
	direct.Stdout, direct.Stderr = logf, logf
	if err := start(direct); err != nil {
		return nil, cl.run, err
	}
	cl.add(func() { stop(direct); _ = logf.Close() })
	directURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitOK(ctx, directURL+"/_/health", nil, 30*time.Second); err != nil {
		b, _ := os.ReadFile(logf.Name())
		return nil, cl.run, fmt.Errorf("direct router: %w\n%s", err, b)
	}

	// One job of echo (no worker serves it: the job stays queued, so GET
	// /v1/jobs/{id} also asks Redis for its queue position).
	hdr, api := st.hdr, st.api
	var job struct {
		ID string `json:"id"`
	}
	if _, err := call(ctx, http.MethodPost, api+"/v1/algorithms/echo/jobs", hdr,
		map[string]any{"input": map[string]any{"message": "bench"}}, &job, http.StatusAccepted, http.StatusCreated, http.StatusOK); err != nil {
		return nil, cl.run, fmt.Errorf("submitting a job: %w", err)
	}
	if job.ID == "" {
		return nil, cl.run, errors.New("submitting a job: no id in the answer")
	}
	// Cancel the job at the end so that nothing of the run stays queued in Redis.
	cl.add(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = call(cctx, http.MethodPost, api+"/v1/jobs/"+job.ID+"/cancel", hdr, nil, nil)
	})
	jobPath := "/v1/jobs/" + job.ID
	algPath := "/v1/algorithms/echo"
	for _, u := range []string{directURL + jobPath, api + jobPath, directURL + algPath, api + algPath} {
		if err := waitOK(ctx, u, hdr, 15*time.Second); err != nil {
			return nil, cl.run, err
		}
	}
	return []workload{
		{name: "GET /v1/jobs/{id}", key: "get_job", direct: directURL + jobPath, proxied: api + jobPath, header: hdr},
		{name: "GET /v1/algorithms/{name}", key: "get_algorithm", direct: directURL + algPath, proxied: api + algPath, header: hdr},
	}, cl.run, nil
}

func maps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func getToken(ctx context.Context, gw, id, secret string) (string, error) {
	if id == "" || secret == "" {
		return "", errors.New("auth create-client printed no AIGW_CLIENT_ID / AIGW_CLIENT_SECRET")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/function/auth/oauth/token", strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token: %s: %s", res.Status, b)
	}
	return tok.AccessToken, nil
}

// call sends a JSON request and decodes the answer into out; a status not in
// want (when given) is an error.
func call(ctx context.Context, method, u string, hdr http.Header, body, out any, want ...int) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, err
	}
	req.Header = hdr.Clone()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if len(want) > 0 && !slices.Contains(want, res.StatusCode) {
		return res.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w: %s", method, u, err, b)
		}
	}
	return res.StatusCode, nil
}

// forgetPool removes the run's pool from Redis: its queue and its registry entry.
func forgetPool(addrs, pool string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	as, err := redisconn.ParseAddrs(addrs)
	if err != nil {
		return
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: as})
	if err != nil {
		return
	}
	defer func() { _ = rdb.Close() }()
	_ = queue.New(rdb, queue.ConfigFromEnv(envconf.New(os.LookupEnv))).Purge(ctx, pool)
	_ = registry.New(rdb).RemovePool(ctx, pool)
}

func dropDB(uri, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return
	}
	defer func() { _ = c.Disconnect(ctx) }()
	_ = c.Database(name).Drop(ctx)
}

// measure sends GET url with hdr from c workers for d and returns the
// throughput and the p99 latency; any failed request fails the run.
func measure(ctx context.Context, url string, hdr http.Header, c int, d time.Duration) (Sample, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: c, MaxIdleConnsPerHost: c}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	res, err := loadgen.Run(ctx, c, d, func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s answered %s", url, res.Status)
		}
		return err
	})
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", url, err)
	}
	if res.Errors > 0 {
		return Sample{}, fmt.Errorf("%s: %d requests failed, e.g. %w", url, res.Errors, res.FirstErr)
	}
	return Sample{RPS: res.RPS, P99: res.P99}, nil
}

func start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

// stop ends a process it started, SIGTERM then SIGKILL.
func stop(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func waitOK(ctx context.Context, url string, hdr http.Header, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header = hdr.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %s", res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering 200 after %s: %v", url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Package e2e runs the whole system as processes — the gateway, the three
// functions deployed from stack.yml through the OpenFaaS API, a worker — against
// the real Redis Cluster and MongoDB-wire server, and drives it the way a user
// and an operator do: go-sdk for the OpenFaaS API, plain HTTP for the public API.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
	"go.yaml.in/yaml/v3"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/internal/webhook"
)

var (
	binDir   string // the system's binaries, built once by TestMain
	buildErr error
	repo     string // repository root
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repo = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "aigw-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// The worker runs as root and drops its runs to nobody (AIGW_RUN_AS), who
	// must reach the algorithms' binaries, as on a node's /opt/aigw/bin.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildErr = build(dir)
	code := testleak.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles what make build would, into dir.
func build(dir string) error {
	pkgs := map[string]string{
		"aigw-gateway": "./gateway/cmd/aigw-gateway",
		"aigw-stack":   "./gateway/cmd/aigw-stack",
		"aigw-worker":  "./worker/cmd/aigw-worker",
		"auth":         "./functions/cmd/auth",
		"router":       "./functions/cmd/router",
		"orchestrator": "./functions/cmd/orchestrator",
		"console":      "./functions/cmd/console",
		"executors":    "./functions/cmd/executors",
		"aigw-echo":    "./algorithms/echo",
		"aigw-kmeans":  "./algorithms/kmeans",
		"aigw-sha256":  "./algorithms/sha256",
		"aigw":         "./cmd/aigw",
	}
	for name, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// system is one running aigw.
type system struct {
	t        *testing.T
	gateway  string // base URL
	user     string
	password string
	admin    string // the admin token
	mongoDB  string
	pool     string
	sdk      *sdk.Client
	token    string
	tenant   string
	secrets  string
	env      []string // servers for the command-line tools

	// clientID and clientSecret are the tenant's API client (token's).
	clientID, clientSecret string
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a long-lived process until the test ends (SIGTERM, then SIGKILL).
func start(t *testing.T, name string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return cmd
}

func run(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// up starts the system without an object store (artifacts go to GridFS);
// env are extra NAME=VALUE variables of the functions.
func up(t *testing.T, env ...string) *system { return upWith(t, objstore.Config{}, env...) }

// upWith starts the system; store, when enabled, is the object store of the
// functions (their secrets, as make up writes them) and of the worker (its
// environment).
func upWith(t *testing.T, store objstore.Config, env ...string) *system {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	redisAddrs := strings.Join(testenv.RedisAddrs(t), ",")
	mongoURI := testenv.MongoURI(t)
	// A database of the test's own, dropped when it ends (after the processes stop).
	s := &system{t: t, mongoDB: testenv.MongoDB(t).Name(), pool: testenv.UniqueName(t, 24), tenant: "e2e"}
	rdb := testenv.Redis(t)
	t.Cleanup(func() { // the pool's queue and registry entry go with the test
		_ = queue.New(rdb, queue.Config{}).Purge(context.Background(), s.pool)
		_ = registry.New(rdb).RemovePool(context.Background(), s.pool)
	})
	s.env = []string{"AIGW_MONGO_URI=" + mongoURI, "AIGW_MONGO_DB=" + s.mongoDB, "AIGW_REDIS_ADDRS=" + redisAddrs}

	// Secrets, as make up writes them.
	s.secrets = t.TempDir()
	s.admin = "e2e-admin-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for name, v := range map[string]string{
		"aigw-jwt-signing-key": run(t, nil, filepath.Join(binDir, "auth"), "genkey"),
		"aigw-admin-token":     s.admin,
		"aigw-mongo-uri":       mongoURI,
		"aigw-redis-addrs":     redisAddrs,
		"aigw-redis-password":  "",
		// Empty without an object store: artifacts go to GridFS.
		"aigw-s3-endpoint":        store.Endpoint,
		"aigw-s3-public-endpoint": store.PublicEndpoint,
		"aigw-s3-bucket":          store.Bucket,
		"aigw-s3-access-key":      store.AccessKey,
		"aigw-s3-secret-key":      store.SecretKey,
	} {
		if err := os.WriteFile(filepath.Join(s.secrets, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	port := freePort(t)
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", port)
	state := t.TempDir()
	start(t, "gateway", []string{"AIGW_GATEWAY_ADDR=127.0.0.1:" + strconv.Itoa(port), "AIGW_GATEWAY_BIN_DIR=" + binDir,
		"AIGW_GATEWAY_STATE_DIR=" + state, "AIGW_REDIS_ADDRS=" + redisAddrs,
		// The async test's callback receiver listens on 127.0.0.1: allowed as an operator would.
		"AIGW_WEBHOOK_ALLOWED_NETS=127.0.0.0/8"}, filepath.Join(binDir, "aigw-gateway"))
	testwait.Eventually(t, 20*time.Second, func() bool { return get(s.gateway+"/healthz") == http.StatusOK }, "the gateway")
	s.user = strings.TrimSpace(readFile(t, filepath.Join(state, "auth", "basic-auth-user")))
	s.password = strings.TrimSpace(readFile(t, filepath.Join(state, "auth", "basic-auth-password")))
	u, _ := url.Parse(s.gateway)
	s.sdk = sdk.NewClient(u, &sdk.BasicAuth{Username: s.user, Password: s.password}, &http.Client{Timeout: time.Minute})

	// stack.yml through the OpenFaaS API, as make up does.
	run(t, []string{"OPENFAAS_URL=" + s.gateway, "AIGW_GATEWAY_USER=" + s.user, "AIGW_GATEWAY_PASSWORD=" + s.password},
		filepath.Join(binDir, "aigw-stack"), "deploy", "-f", filepath.Join(repo, "stack.yml"), "-secrets-dir", s.secrets,
		"-env", "AIGW_JWKS_URL="+s.gateway+"/function/auth/.well-known/jwks.json,AIGW_MONGO_DB="+s.mongoDB+
			",AIGW_ORCHESTRATOR_INTERVAL=500ms,AIGW_RATE_LIMIT_RPS=100000"+
			// The test's webhook receiver listens on 127.0.0.1: allowed as an operator would.
			",AIGW_WEBHOOK_ALLOWED_NETS=127.0.0.0/8"+
			// The console reaches this test's gateway.
			",AIGW_CONSOLE_UPSTREAM="+s.gateway+strings.Join(append([]string{""}, env...), ","))

	start(t, "worker", append([]string{"AIGW_POOL=" + s.pool, "AIGW_SLOTS=2", "AIGW_NODE_NAME=e2e-" + s.pool,
		"AIGW_BIN_DIR=" + binDir, "AIGW_ALGORITHMS_DIR=" + filepath.Join(repo, "algorithms"), "AIGW_METRICS_ADDR=off",
		// The same store as the functions' (none: not the one the test's environment may name).
		objstore.EnvEndpoint + "=" + store.Endpoint, objstore.EnvPublicEndpoint + "=" + store.PublicEndpoint,
		objstore.EnvBucket + "=" + store.Bucket, objstore.EnvAccessKey + "=" + store.AccessKey, objstore.EnvSecretKey + "=" + store.SecretKey}, s.env...),
		filepath.Join(binDir, "aigw-worker"))

	// A client of tenant e2e with every client scope, and its token.
	creds := map[string]string{}
	for _, line := range strings.Split(run(t, s.env, filepath.Join(binDir, "auth"), "create-client", "-name", "e2e",
		"-tenant", s.tenant, "-scopes", "jobs:read,jobs:write"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			creds[k] = v
		}
	}
	s.clientID, s.clientSecret = creds["AIGW_CLIENT_ID"], creds["AIGW_CLIENT_SECRET"]
	s.token = s.getToken(s.clientID, s.clientSecret)
	return s
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func get(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *system) getToken(id, secret string) string {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.gateway+"/function/auth/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := do(s.t, req, &tok); code != http.StatusOK || tok.AccessToken == "" {
		s.t.Fatalf("token: %d", code)
	}
	return tok.AccessToken
}

// do sends req and decodes a JSON answer into out (when not nil); it returns
// the status. Every exchange is checked against the OpenAPI document.
func do(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s → %d: not JSON: %s", req.Method, req.URL, resp.StatusCode, b)
		}
	}
	if resp.StatusCode >= 400 {
		t.Logf("%s %s → %d %s", req.Method, req.URL, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// apiClient validates every request and response against the OpenAPI
// document (internal/apispec), failing t on any that breaks it.
func apiClient(t *testing.T) *http.Client {
	return &http.Client{Transport: apispec.Transport(t, nil)}
}

func (s *system) api(method, path string, body any, out any, headers ...string) int {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.gateway+"/function/router"+path, r)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(s.t, req, out)
}

type jobView struct {
	ID     string          `json:"id"`
	State  string          `json:"state"`
	Output json.RawMessage `json:"output"`
	Error  *struct {
		Code, Message string
	} `json:"error"`
	Attempt int `json:"attempt"`
}

func (s *system) waitState(id, want string, d time.Duration) jobView {
	s.t.Helper()
	var j jobView
	testwait.Eventually(s.t, d, func() bool {
		j = jobView{}
		s.api("GET", "/v1/jobs/"+id, nil, &j)
		return j.State == want
	}, "job %s %s", id, want)

	return j
}

// registerEcho registers the echo reference algorithm in this test's pool
// through the API, with an operator token (the tenant's client may not).
func (s *system) registerEcho() {
	s.t.Helper()
	d, err := algorithm.LoadFile(filepath.Join(repo, "algorithms", "echo", algorithm.DefinitionFile))
	if err != nil {
		s.t.Fatal(err)
	}
	d.Pool = s.pool
	if code := s.api("PUT", "/v1/algorithms/echo", d, nil); code != http.StatusForbidden {
		s.t.Fatalf("register echo with a client token: %d, want 403", code)
	}
	req, _ := http.NewRequest("POST", s.gateway+"/function/auth/admin/token", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := do(s.t, req, &tok); code != http.StatusOK || tok.AccessToken == "" {
		s.t.Fatalf("operator token: %d", code)
	}
	if code := s.api("PUT", "/v1/algorithms/echo", d, nil, "Authorization", "Bearer "+tok.AccessToken); code != http.StatusCreated && code != http.StatusOK {
		s.t.Fatalf("register echo: %d", code)
	}
}

func TestWholeSystem(t *testing.T) {
	s := up(t)
	ctx := context.Background()

	t.Run("openfaas api", func(t *testing.T) {
		info, err := s.sdk.GetInfo(ctx)
		if err != nil || info.Provider.Provider == "" {
			t.Fatalf("info: %+v %v", info, err)
		}
		fns, err := s.sdk.GetFunctions(ctx, "")
		if want := stackFunctions(t); err != nil || len(fns) != len(want) {
			t.Fatalf("functions: %+v %v, want the %d of stack.yml: %v", fns, err, len(want), want)
		}
		// Deploy, list, scale and remove one more function.
		_, err = s.sdk.Deploy(ctx, types.FunctionDeployment{Service: "auth-copy", Image: "ghcr.io/aigw/auth:latest",
			Secrets: []string{"aigw-mongo-uri", "aigw-jwt-signing-key", "aigw-admin-token"},
			EnvVars: map[string]string{"AIGW_MONGO_DB": s.mongoDB}})
		if err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, 30*time.Second, func() bool {
			st, err := s.sdk.GetFunction(ctx, "auth-copy", "")
			return err == nil && st.AvailableReplicas == 1
		}, "auth-copy ready")

		if err := s.sdk.ScaleFunction(ctx, "auth-copy", "", 2); err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, 30*time.Second, func() bool {
			st, err := s.sdk.GetFunction(ctx, "auth-copy", "")
			return err == nil && st.AvailableReplicas == 2
		}, "auth-copy at 2 replicas")

		if get(s.gateway+"/function/auth-copy/.well-known/jwks.json") != http.StatusOK {
			t.Fatal("auth-copy does not serve")
		}
		if err := s.sdk.DeleteFunction(ctx, "auth-copy", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.sdk.GetFunction(ctx, "auth-copy", ""); err == nil {
			t.Fatal("auth-copy still there after delete")
		}
		if get(s.gateway+"/function/auth-copy/.well-known/jwks.json") != http.StatusNotFound {
			t.Fatal("removed function still answers")
		}
	})

	s.registerEcho()
	var algos []map[string]any
	var list struct {
		Algorithms []map[string]any `json:"algorithms"`
	}
	if code := s.api("GET", "/v1/algorithms", nil, &list); code != http.StatusOK {
		t.Fatalf("catalog: %d", code)
	}
	algos = list.Algorithms
	if len(algos) == 0 {
		t.Fatalf("empty catalog")
	}

	t.Run("sync submit", func(t *testing.T) {
		var j jobView
		code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "sync"}}, &j, "Prefer", "wait=30")
		if code != http.StatusOK || j.State != "succeeded" || !strings.Contains(string(j.Output), `"sync"`) {
			t.Fatalf("sync submit: %d %+v %s", code, j, j.Output)
		}
	})

	t.Run("events and webhook", func(t *testing.T) {
		secret := s.webhookSecret(t)
		hooks := make(chan http.Header, 16)
		var bodies sync.Map
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if err := webhook.Verify(secret, r.Header, b, 5*time.Minute); err != nil {
				t.Errorf("webhook signature: %v", err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			bodies.Store(r.Header.Get("webhook-id"), string(b))
			hooks <- r.Header.Clone()
		}))
		defer recv.Close()
		var j jobView
		code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "hooked", "sleep_ms": 300},
			"webhook": recv.URL + "/hook", "webhook_events": []string{"succeeded"}}, &j)
		if code != http.StatusAccepted || j.ID == "" {
			t.Fatalf("submit: %d %+v", code, j)
		}
		evs := s.events(t, j.ID)
		joined := strings.Join(evs, "\n")
		for _, want := range []string{`"state":"queued"`, `"state":"running"`, `"hooked"`, `"state":"succeeded"`} {
			if !strings.Contains(joined, want) {
				t.Fatalf("events lack %s:\n%s", want, joined)
			}
		}
		select {
		case h := <-hooks:
			id := h.Get("webhook-id")
			b, _ := bodies.Load(id)
			if !strings.Contains(b.(string), "job.succeeded") || !strings.Contains(b.(string), j.ID) {
				t.Fatalf("webhook body: %s", b)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no webhook within 30 s")
		}
	})

	t.Run("async submit through the gateway", func(t *testing.T) {
		calls := make(chan http.Header, 4)
		var body atomic.Value
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			body.Store(b)
			calls <- r.Header.Clone()
		}))
		defer recv.Close()
		req, _ := http.NewRequest("POST", s.gateway+"/async-function/router/v1/algorithms/echo/jobs",
			strings.NewReader(`{"input":{"message":"async"}}`))
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Callback-Url", recv.URL+"/done")
		resp, err := apiClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		callID := resp.Header.Get("X-Call-Id")
		if resp.StatusCode != http.StatusAccepted || callID == "" {
			t.Fatalf("async: %d call id %q", resp.StatusCode, callID)
		}
		select {
		case h := <-calls:
			if h.Get("X-Call-Id") != callID || h.Get("X-Function-Status") != "202" {
				t.Fatalf("callback headers: %v", h)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no async callback within 30 s")
		}
		var j jobView
		if err := json.Unmarshal(body.Load().([]byte), &j); err != nil || j.ID == "" {
			t.Fatalf("callback body: %s", body.Load())
		}
		done := s.waitState(j.ID, "succeeded", 30*time.Second)
		if !strings.Contains(string(done.Output), `"async"`) {
			t.Fatalf("async output %s", done.Output)
		}
	})

	t.Run("cancel a running job", func(t *testing.T) {
		var j jobView
		if code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "slow", "sleep_ms": 60000}}, &j); code != http.StatusAccepted {
			t.Fatalf("submit: %d", code)
		}
		s.waitState(j.ID, "running", 30*time.Second)
		if code := s.api("POST", "/v1/jobs/"+j.ID+"/cancel", nil, nil); code >= 300 {
			t.Fatalf("cancel: %d", code)
		}
		s.waitState(j.ID, "canceled", 10*time.Second)
	})

	t.Run("a killed router replica is restarted while requests succeed", func(t *testing.T) {
		if err := s.sdk.ScaleFunction(ctx, "router", "", 2); err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, 30*time.Second, func() bool {
			st, err := s.sdk.GetFunction(ctx, "router", "")
			return err == nil && st.AvailableReplicas == 2
		}, "router at 2 replicas")

		before := pidsOf(filepath.Join(binDir, "router"))
		if len(before) != 2 {
			t.Fatalf("router processes: %v", before)
		}
		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("GET", s.gateway+"/function/router/v1/algorithms", nil)
					req.Header.Set("Authorization", "Bearer "+s.token)
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					if err == nil && resp.StatusCode == http.StatusOK {
						ok.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		if err := syscall.Kill(before[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || ok.Load() < 10 {
			t.Fatalf("while a replica was killed: %d ok, %d failed", ok.Load(), failed.Load())
		}
		testwait.Eventually(t, 30*time.Second, func() bool {
			st, err := s.sdk.GetFunction(ctx, "router", "")
			after := pidsOf(filepath.Join(binDir, "router"))
			return err == nil && st.AvailableReplicas == 2 && len(after) == 2 && !contains(after, before[0])
		}, "router back at 2 replicas")

		t.Logf("%d requests succeeded while a replica was killed and restarted", ok.Load())
	})
}

func (s *system) webhookSecret(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.gateway+"/function/orchestrator/admin/tenants/"+s.tenant+"/webhook-secret", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	var out struct {
		Secret string `json:"secret"`
	}
	if code := do(t, req, &out); code != http.StatusOK || !strings.HasPrefix(out.Secret, webhook.SecretPrefix) {
		t.Fatalf("webhook secret: %d %+v", code, out)
	}
	return out.Secret
}

// events reads a job's event stream until the server closes it (after the
// terminal event) and returns its data lines.
func (s *system) events(t *testing.T, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.gateway+"/function/router/v1/jobs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("events stream: %v", err)
	}
	return data
}

// pidsOf lists the processes running the executable path.
func pidsOf(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == path {
			out = append(out, pid)
		}
	}
	return out
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// stackFunctions lists the functions stack.yml deploys (the keys of its
// functions map).
func stackFunctions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		Functions map[string]any `yaml:"functions"`
	}
	if err := yaml.Unmarshal(b, &stack); err != nil {
		t.Fatalf("stack.yml: %v", err)
	}
	names := make([]string, 0, len(stack.Functions))
	for name := range stack.Functions {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

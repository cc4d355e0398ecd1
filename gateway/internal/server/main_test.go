package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"

	"github.com/aigw/aigw/gateway/internal/config"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/internal/testlog"
)

// binDir holds testfn, built once: images ghcr.io/aigw/testfn:* resolve to it.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "aigw-gateway-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "testfn"), "../testfn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building testfn:", err)
			return 1
		}
		return testleak.Run(m)
	}())
}

const testImage = "ghcr.io/aigw/testfn:1.0.0"

type bundle struct {
	t      *testing.T
	g      *Gateway
	cfg    config.Config
	url    string
	client *sdk.Client
	user   string
	pass   string
}

// start runs a gateway on a free loopback port, stopped when t ends.
func start(t *testing.T, cfg config.Config, opts Options) *bundle {
	t.Helper()
	h := testlog.New(t).Handler() // registered first: it logs until the gateway's cleanup below has ended
	if opts.Logger != nil {       // a test's own logger gets every record too
		h = slog.NewMultiHandler(h, opts.Logger.Handler())
	}
	opts.Logger = slog.New(h)
	if opts.Version == "" {
		opts.Version = "test"
	}
	ctx := t.Context()
	g, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, g: g, cfg: cfg, url: "http://" + g.Addr()}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(sctx)
	})
	user, err := os.ReadFile(filepath.Join(cfg.SecretsDir, "basic-auth-user"))
	if err != nil {
		t.Fatal(err)
	}
	pass, err := os.ReadFile(filepath.Join(cfg.SecretsDir, "basic-auth-password"))
	if err != nil {
		t.Fatal(err)
	}
	b.user, b.pass = string(user), string(pass)
	u, _ := url.Parse(b.url)
	b.client = sdk.NewClient(u, &sdk.BasicAuth{Username: b.user, Password: b.pass}, &http.Client{Timeout: 30 * time.Second})
	return b
}

// testConfig is a gateway config with its own state dir and short timeouts.
func testConfig(t *testing.T) config.Config {
	state := t.TempDir()
	return config.Config{
		Addr: "127.0.0.1:0", BinDir: binDir, StateDir: state, SecretsDir: filepath.Join(state, "auth"),
		ReadTimeout: 30 * time.Second, UpstreamTimeout: 30 * time.Second, ReadyTimeout: 10 * time.Second,
		StopGrace: 3 * time.Second, AsyncMaxBody: 10 << 20, AsyncMaxAttempts: 5, AsyncConsumer: "test",
		LogLevel: slog.LevelDebug,
	}
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return start(t, testConfig(t), Options{})
}

// deploy deploys testfn as name and fails t on error.
func (b *bundle) deploy(name string, mod func(*types.FunctionDeployment)) {
	b.t.Helper()
	d := types.FunctionDeployment{Service: name, Image: testImage}
	if mod != nil {
		mod(&d)
	}
	if code, err := b.client.Deploy(b.t.Context(), d); err != nil {
		b.t.Fatalf("deploy %s: %d %v", name, code, err)
	}
}

// get invokes GET /function/<name><path> and returns status and body.
func (b *bundle) get(name, path string) (int, string) {
	b.t.Helper()
	res, err := http.Get(b.url + "/function/" + name + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// system sends an authenticated request to /system/... and returns status and body.
func (b *bundle) system(method, path, body string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.url+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.SetBasicAuth(b.user, b.pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, string(out)
}

// processesOf returns the pids whose environment names the function (Linux /proc).
func processesOf(name string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "AIGW_FUNCTION_NAME="+name {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}

var nameSeq struct {
	sync.Mutex
	n int
}

// fnName returns a function name unique in this test binary.
func fnName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.n)
}

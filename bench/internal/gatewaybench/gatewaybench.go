// Package gatewaybench measures what aigw-gateway's /function/{name}/… proxy
// costs: requests/s and p99 latency of a function called directly and through
// the gateway, in the same run, at a fixed concurrency. The function is the
// gateway's test function (an echo), one replica, and the direct target is a
// second process of the same binary.
package gatewaybench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one bench run.
type Config struct {
	// RepoRoot is the directory holding go.work (the binaries are built from it).
	RepoRoot    string
	Duration    time.Duration // per target
	Concurrency int
	// Path is the function path requested (default "/": an echo).
	Path string
}

// Result is what one run measured.
type Result struct {
	DirectRPS, ProxiedRPS float64
	DirectP99, ProxiedP99 time.Duration
	// OverheadPct is the throughput lost to the proxy, in percent of direct.
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

// Run builds the gateway and the test function, starts both, deploys the
// function, and measures direct then proxied.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	dir, err := os.MkdirTemp("", "aigw-gatewaybench")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	for pkg, out := range map[string]string{
		"./gateway/internal/testfn":  filepath.Join(bin, "testfn"),
		"./gateway/cmd/aigw-gateway": filepath.Join(dir, "aigw-gateway"),
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = cfg.RepoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			return Result{}, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
	}

	fnPort, err := freePort()
	if err != nil {
		return Result{}, err
	}
	direct := exec.Command(filepath.Join(bin, "testfn"))
	direct.Env = append(os.Environ(), "PORT="+strconv.Itoa(fnPort))
	if err := start(direct); err != nil {
		return Result{}, err
	}
	defer stop(direct)
	directURL := fmt.Sprintf("http://127.0.0.1:%d", fnPort)
	if err := waitOK(ctx, directURL+"/_/health"); err != nil {
		return Result{}, fmt.Errorf("test function: %w", err)
	}

	gwPort, err := freePort()
	if err != nil {
		return Result{}, err
	}
	state := filepath.Join(dir, "state")
	gw := exec.Command(filepath.Join(dir, "aigw-gateway"))
	gw.Env = append(os.Environ(),
		"AIGW_GATEWAY_ADDR=127.0.0.1:"+strconv.Itoa(gwPort), "AIGW_GATEWAY_BIN_DIR="+bin,
		"AIGW_GATEWAY_STATE_DIR="+state, "AIGW_LOG_LEVEL=error", "AIGW_REDIS_ADDRS=")
	gw.Stderr = os.Stderr
	if err := start(gw); err != nil {
		return Result{}, err
	}
	defer stop(gw)
	gwURL := fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	if err := waitOK(ctx, gwURL+"/healthz"); err != nil {
		return Result{}, fmt.Errorf("gateway: %w", err)
	}
	if err := deploy(ctx, gwURL, filepath.Join(state, "auth")); err != nil {
		return Result{}, err
	}

	var res Result
	for _, target := range []struct {
		url      string
		rps      *float64
		p99      *time.Duration
		warmFrom time.Duration
	}{
		{directURL + cfg.Path, &res.DirectRPS, &res.DirectP99, time.Second},
		{gwURL + "/function/benchecho" + cfg.Path, &res.ProxiedRPS, &res.ProxiedP99, time.Second},
	} {
		if _, err := measure(ctx, target.url, cfg.Concurrency, target.warmFrom); err != nil {
			return Result{}, err
		}
		m, err := measure(ctx, target.url, cfg.Concurrency, cfg.Duration)
		if err != nil {
			return Result{}, err
		}
		*target.rps, *target.p99 = m.rps, m.p99
	}
	if res.DirectRPS > 0 {
		res.OverheadPct = (res.DirectRPS - res.ProxiedRPS) / res.DirectRPS * 100
	}
	return res, nil
}

func deploy(ctx context.Context, gwURL, authDir string) error {
	user, err := os.ReadFile(filepath.Join(authDir, "basic-auth-user"))
	if err != nil {
		return err
	}
	pass, err := os.ReadFile(filepath.Join(authDir, "basic-auth-password"))
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"service": "benchecho", "image": "ghcr.io/aigw/testfn:bench"})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gwURL+"/system/functions", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.SetBasicAuth(string(user), string(pass))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	msg, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("deploying the bench function: %s: %s", res.Status, msg)
	}
	return nil
}

type measured struct {
	rps float64
	p99 time.Duration
}

// measure sends GET url from c workers for d and returns the throughput and
// the p99 latency; any failed request fails the run.
func measure(ctx context.Context, url string, c int, d time.Duration) (measured, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: c, MaxIdleConnsPerHost: c}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lat := make([][]time.Duration, c)
	errs := make([]error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					errs[i] = err
					return
				}
				res, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs[i] = err
					}
					return
				}
				_, err = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if err == nil && res.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s answered %s", url, res.Status)
				}
				if err != nil {
					if ctx.Err() == nil {
						errs[i] = err
					}
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return measured{}, err
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return measured{}, fmt.Errorf("%s: no request completed", url)
	}
	slices.Sort(all)
	return measured{rps: float64(len(all)) / elapsed.Seconds(), p99: all[len(all)*99/100]}, nil
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

func waitOK(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering 200 after 15s: %v", url, err)
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

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

// monitoringFiles are what operators load into Prometheus and Grafana; every
// metric they name must be exported by some binary.
var monitoringFiles = []string{"monitoring/alerts.yml", "monitoring/grafana/aigw.json"}

// metricName finds metric names in rules, dashboards and their descriptions.
var metricName = regexp.MustCompile(`\b(?:aigw|gateway)_[a-z0-9_]+\b`)

// TestMonitoringNamesExportedMetrics runs the system as make up does, with a
// worker whose metrics are on, runs a job, and scrapes every target a
// Prometheus configured as monitoring/prometheus.yml would: the gateway, every
// function replica the gateway lists at /system/metrics-targets, the worker.
// Every metric the alert rules and the dashboard name is among what they
// export, and the values follow the job.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	s := up(t)
	// A pool of this test's own, served only by a worker with its metrics on.
	s.pool = testenv.UniqueName(t, 24)
	rdb := testenv.Redis(t)
	t.Cleanup(func() {
		_ = queue.New(rdb, queue.Config{}).Purge(context.Background(), s.pool)
		_ = registry.New(rdb).RemovePool(context.Background(), s.pool)
	})
	workerMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start(t, "worker-metrics", append([]string{"AIGW_POOL=" + s.pool, "AIGW_SLOTS=1", "AIGW_NODE_NAME=e2e-metrics-" + s.pool,
		"AIGW_BIN_DIR=" + binDir, "AIGW_ALGORITHMS_DIR=" + filepath.Join(repo, "algorithms"), "AIGW_METRICS_ADDR=" + workerMetrics}, s.env...),
		filepath.Join(binDir, "aigw-worker"))
	s.registerEcho()
	var created jobView
	if code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "metrics"}}, &created); code != http.StatusAccepted && code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	s.waitState(created.ID, "succeeded", time.Minute)

	// The targets, as Prometheus' http_sd_configs reads them.
	req, _ := http.NewRequest("GET", s.gateway+"/system/metrics-targets", nil)
	req.SetBasicAuth(s.user, s.password)
	var targets []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	// Not through do: the provider API (/system/*) is OpenFaaS', not in aigw's OpenAPI document.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /system/metrics-targets: %d, %v", resp.StatusCode, err)
	}
	replicas := map[string]int{}
	for _, tg := range targets {
		replicas[tg.Labels["service"]] += len(tg.Targets)
	}
	for fn, min := range map[string]int{"auth": 1, "router": 2, "orchestrator": 1, "console": 1} {
		if replicas[fn] < min {
			t.Errorf("metrics targets: %d replicas of %s, want at least %d (%+v)", replicas[fn], fn, min, targets)
		}
	}

	ctx := t.Context()
	c := &http.Client{Timeout: 10 * time.Second}
	scrapeAll := func() map[string][]httpmetrics.Families {
		t.Helper()
		by := map[string][]httpmetrics.Families{}
		add := func(service, url string) {
			f, err := httpmetrics.Scrape(ctx, c, url)
			if err != nil {
				t.Fatalf("scrape %s: %v", service, err)
			}
			by[service] = append(by[service], f)
		}
		add("gateway", s.gateway+"/metrics")
		add("worker", "http://"+workerMetrics+"/metrics")
		for _, tg := range targets {
			for _, addr := range tg.Targets {
				add(tg.Labels["service"], "http://"+addr+tg.Labels["__metrics_path__"])
			}
		}
		return by
	}
	sum := func(fs []httpmetrics.Families, name string, labels ...string) float64 {
		var v float64
		for _, f := range fs {
			x, _ := f.Value(name, labels...)
			v += x
		}
		return v
	}

	// The orchestrator refreshes its gauges after every tick (500 ms here).
	var by map[string][]httpmetrics.Families
	testwait.Eventually(t, 30*time.Second, func() bool {
		by = scrapeAll()
		return sum(by["orchestrator"], "aigw_pool_workers", "pool", s.pool) >= 1
	}, "the orchestrator reporting the worker of pool %s", s.pool)

	exported := map[string]string{} // family → a service exporting it
	for service, fs := range by {
		for _, f := range fs {
			for name, fam := range f {
				exported[name] = service
				if fam.GetType().String() == "HISTOGRAM" {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						exported[name+suf] = service
					}
				}
			}
		}
	}
	for _, file := range monitoringFiles {
		b, err := os.ReadFile(filepath.Join(repo, file))
		if err != nil {
			t.Fatal(err)
		}
		names := metricName.FindAllString(string(b), -1)
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) < 5 {
			t.Fatalf("%s names only %v", file, names)
		}
		for _, n := range names {
			if _, ok := exported[n]; !ok {
				t.Errorf("%s uses %s, which no binary exports", file, n)
			}
		}
		t.Logf("%s: %d metric names, each exported", file, len(names))
	}

	if _, err := exec.LookPath("prometheus"); err == nil {
		t.Run("prometheus", func(t *testing.T) {
			checkWithPrometheus(t, s, workerMetrics)
		})
	} else if testenv.Required() {
		t.Error("prometheus is not installed (scripts/promtool.sh installs it with promtool)")
	}

	// The values follow what happened.
	if v := sum(by["router"], httpmetrics.RequestsTotal, "method", "POST", "route", "/v1/algorithms/{name}/jobs"); v < 1 {
		t.Errorf("router: %s of the job's submission = %v", httpmetrics.RequestsTotal, v)
	}
	if v := sum(by["router"], httpmetrics.RequestsTotal, "route", "/v1/jobs/{id}", "code", "200"); v < 1 {
		t.Errorf("router: %s of GET /v1/jobs/{id} = %v", httpmetrics.RequestsTotal, v)
	}
	if v := sum(by["auth"], httpmetrics.RequestsTotal, "route", "/oauth/token", "code", "200"); v < 1 {
		t.Errorf("auth: token requests = %v", v)
	}
	if v := sum(by["gateway"], httpmetrics.RequestsTotal, "route", "/function/{name}/{path...}"); v < 3 {
		t.Errorf("gateway: proxied requests = %v", v)
	}
	if v := sum(by["worker"], "aigw_worker_jobs_finished_total", "outcome", "succeeded"); v != 1 {
		t.Errorf("worker: runs succeeded = %v, want 1", v)
	}
	for _, f := range by["orchestrator"] { // each replica reports the whole pool
		if v, ok := f.Value("aigw_pool_slots", "pool", s.pool); ok && v != 1 {
			t.Errorf("orchestrator: slots of pool %s = %v, want 1", s.pool, v)
		}
	}
}

// checkWithPrometheus runs a real Prometheus on monitoring/prometheus.yml,
// pointed at this test's system, and waits until every target is up (the
// gateway's service discovery found each replica), every target carries its
// service label, and every alert rule evaluates without error.
func checkWithPrometheus(t *testing.T, s *system, workerMetrics string) {
	dir := t.TempDir()
	conf, err := os.ReadFile(filepath.Join(repo, "monitoring", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(repo, "monitoring", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(s.password), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := strings.TrimPrefix(s.gateway, "http://")
	for _, r := range [][2]string{
		{"127.0.0.1:8080", gw},
		{`"127.0.0.1:9108", "127.0.0.1:9109"`, `"` + workerMetrics + `"`},
		{"../.aigw/gateway/auth/basic-auth-password", filepath.Join(dir, "password")},
		{"scrape_interval: 15s", "scrape_interval: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
		{"refresh_interval: 15s", "refresh_interval: 1s"},
	} {
		if !strings.Contains(string(conf), r[0]) {
			t.Fatalf("monitoring/prometheus.yml no longer has %q", r[0])
		}
		conf = []byte(strings.ReplaceAll(string(conf), r[0], r[1]))
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	web := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start(t, "prometheus", nil, "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	api := func(path string, out any) bool {
		resp, err := http.Get("http://" + web + path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(out) == nil
	}

	type target struct {
		Labels    map[string]string `json:"labels"`
		Health    string            `json:"health"`
		LastError string            `json:"lastError"`
		ScrapeURL string            `json:"scrapeUrl"`
	}
	var targets []target
	testwait.Eventually(t, 60*time.Second, func() bool {
		var r struct {
			Data struct {
				ActiveTargets []target `json:"activeTargets"`
			} `json:"data"`
		}
		if !api("/api/v1/targets", &r) {
			return false
		}
		targets = r.Data.ActiveTargets
		services := map[string]bool{}
		for _, tg := range targets {
			if tg.Health != "up" {
				return false
			}
			services[tg.Labels["service"]] = true
		}
		for _, want := range []string{"gateway", "auth", "router", "orchestrator", "console", "worker"} {
			if !services[want] {
				return false
			}
		}
		return true
	}, "every target up in Prometheus, one per service at least (last: %+v)", &targets)

	testwait.Eventually(t, 30*time.Second, func() bool {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if !api("/api/v1/rules", &r) || len(r.Data.Groups) == 0 {
			return false
		}
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					t.Logf("rule %s: %s %s", rule.Name, rule.Health, rule.LastError)
					return false
				}
			}
		}
		return true
	}, "every alert rule evaluated without error")

	// A query the dashboard makes, answered from the scraped series.
	var q struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	testwait.Eventually(t, 30*time.Second, func() bool {
		return api("/api/v1/query?query="+url.QueryEscape(`max by (pool) (aigw_pool_workers{pool="`+s.pool+`"})`), &q) && len(q.Data.Result) == 1
	}, "aigw_pool_workers of pool %s in Prometheus", s.pool)
}

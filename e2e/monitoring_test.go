package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

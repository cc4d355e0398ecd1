package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/provider"
	"github.com/aigw/aigw/internal/httpmetrics"
)

// Prometheus finds every replica of the functions that ask to be scraped at
// GET /system/metrics-targets (http_sd), not through /function/NAME, which
// keeps /_/metrics to itself; the gateway counts its requests by route.
func TestMetricsTargetsAndRoutes(t *testing.T) {
	b := setup(t)
	scraped, plain := fnName("scraped"), fnName("plain")
	b.deploy(scraped, func(d *types.FunctionDeployment) {
		d.Labels = &map[string]string{"com.openfaas.scale.min": "2"}
		d.Annotations = &map[string]string{provider.AnnotationScrape: "true", provider.AnnotationPath: "/_/metrics"}
	})
	b.deploy(plain, nil)

	code, body := b.system(http.MethodGet, "/system/metrics-targets", "")
	if code != http.StatusOK {
		t.Fatalf("GET /system/metrics-targets: %d %s", code, body)
	}
	var targets []provider.Target
	if err := json.Unmarshal([]byte(body), &targets); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(targets) != 2 {
		t.Fatalf("targets = %s, want the 2 replicas of %s", body, scraped)
	}
	pids := map[int]bool{}
	for _, tg := range targets {
		if tg.Labels["service"] != scraped || tg.Labels["__metrics_path__"] != "/_/metrics" || tg.Labels["replica"] == "" || len(tg.Targets) != 1 {
			t.Fatalf("target %+v", tg)
		}
		// The address is the replica's own: testfn answers with its pid.
		resp, err := http.Get("http://" + tg.Targets[0] + tg.Labels["__metrics_path__"])
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ PID int }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || e.PID == 0 {
			t.Fatalf("replica %s: %v", tg.Targets[0], err)
		}
		pids[e.PID] = true
	}
	if len(pids) != 2 {
		t.Errorf("the targets are %d processes, want 2", len(pids))
	}

	req, _ := http.NewRequest(http.MethodGet, b.url+"/system/metrics-targets", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("targets without credentials: %d, want 401", resp.StatusCode)
	}

	for _, p := range []string{"/_/metrics", "/_//metrics", "/x/../_/metrics"} {
		if code, body := b.get(scraped, p); code != http.StatusNotFound || !strings.Contains(body, "not served through the gateway") {
			t.Errorf("GET /function/%s%s: %d %s, want 404", scraped, p, code, body)
		}
	}
	if code, _ := b.get(plain, "/hello"); code != http.StatusOK {
		t.Fatalf("GET /function/%s/hello: %d", plain, code)
	}

	f, err := httpmetrics.Scrape(t.Context(), http.DefaultClient, b.url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels []string
		min    float64
	}{
		{[]string{"method", "GET", "route", "/function/{name}/{path...}", "code", "200"}, 1},
		{[]string{"method", "GET", "route", "/function/{name}/{path...}", "code", "404"}, 1},
		{[]string{"method", "GET", "route", "/system/metrics-targets", "code", "200"}, 1},
		{[]string{"method", "GET", "route", "/system/metrics-targets", "code", "401"}, 1},
	} {
		if v, _ := f.Value(httpmetrics.RequestsTotal, c.labels...); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", httpmetrics.RequestsTotal, c.labels, v, c.min)
		}
	}
	if v, _ := f.Value("gateway_function_invocation_total", "function_name", plain+".openfaas-fn", "code", "200"); v != 1 {
		t.Errorf("gateway_function_invocation_total of %s = %v, want 1", plain, v)
	}
}

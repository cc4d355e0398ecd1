package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testwait"
	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
)

// TestProviderAPI drives the gateway with go-sdk as one drives OpenFaaS.
func TestProviderAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	name := fnName("api")

	info, err := b.client.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Provider.Provider != "aigw-gateway" || info.Provider.Orchestration != "process" || info.Version.Release != "test" || info.Arch == "" {
		t.Errorf("GetInfo = %+v", info)
	}
	ns, err := b.client.GetNamespaces(ctx)
	if err != nil || len(ns) != 1 || ns[0] != "openfaas-fn" {
		t.Errorf("GetNamespaces = %v, %v", ns, err)
	}

	if code, err := b.client.CreateSecret(ctx, types.Secret{Name: "api-key", Value: "s3cret"}); err != nil {
		t.Fatalf("CreateSecret: %d %v", code, err)
	}
	if code, _ := b.client.CreateSecret(ctx, types.Secret{Name: "api-key", Value: "again"}); code != http.StatusConflict {
		t.Errorf("CreateSecret twice = %d, want 409", code)
	}
	if code, err := b.client.UpdateSecret(ctx, types.Secret{Name: "api-key", Value: "s3cret2"}); err != nil {
		t.Fatalf("UpdateSecret: %d %v", code, err)
	}
	secrets, err := b.client.GetSecrets(ctx, "")
	if err != nil || len(secrets) != 1 || secrets[0].Name != "api-key" || secrets[0].Value != "" {
		t.Errorf("GetSecrets = %+v, %v", secrets, err)
	}
	fi, err := os.Stat(filepath.Join(b.cfg.StateDir, "secrets", "api-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret on disk: %v %v", fi, err)
	}

	labels := map[string]string{"team": "ml"}
	ann := map[string]string{"note": "hello"}
	b.deploy(name, func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"GREETING": "hi there"}
		d.Secrets = []string{"api-key"}
		d.Labels, d.Annotations = &labels, &ann
		d.Namespace = sdk.DefaultNamespace
	})
	st, err := b.client.GetFunction(ctx, name, sdk.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != name || st.Image != testImage || st.Replicas != 1 || st.AvailableReplicas != 1 ||
		st.Labels == nil || (*st.Labels)["team"] != "ml" || (*st.Annotations)["note"] != "hello" || st.EnvVars["GREETING"] != "hi there" {
		t.Errorf("GetFunction = %+v", st)
	}
	fns, err := b.client.GetFunctions(ctx, sdk.DefaultNamespace)
	if err != nil || len(fns) != 1 || fns[0].Name != name {
		t.Errorf("GetFunctions = %+v, %v", fns, err)
	}

	if code, body := b.get(name, "/env?key=GREETING"); code != 200 || body != "hi there" {
		t.Errorf("env: %d %q", code, body)
	}
	if code, body := b.get(name, "/secret?name=api-key"); code != 200 || body != "s3cret2" {
		t.Errorf("secret: %d %q", code, body)
	}
	if code, body := b.get(name, "/env?key=AIGW_SECRETS_DIR"); code != 200 || !strings.HasPrefix(body, "/") {
		t.Errorf("AIGW_SECRETS_DIR: %d %q", code, body)
	} else if fi, err := os.Stat(filepath.Join(body, "api-key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("function secret file: %v %v", fi, err)
	}
	// An escaped slash in a segment reaches the function escaped.
	if code, body := b.get(name, "/files/a%2Fb.txt?x=1"); code != 200 || !strings.Contains(body, `"raw_path":"/files/a%2Fb.txt"`) {
		t.Errorf("escaped path: %d %s", code, body)
	}
	// go-sdk invokes /function/<name>.<namespace> (its path replaces the request's).
	req, _ := http.NewRequest(http.MethodPost, "http://x/?print=from-sdk", strings.NewReader(`{"a":1}`))
	res, err := b.client.InvokeFunction(name, "", false, false, req)
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Method, Path, Query, Body string
		Header                    map[string][]string
	}
	err = json.NewDecoder(res.Body).Decode(&echo)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || echo.Method != "POST" || echo.Path != "/" || echo.Body != `{"a":1}` || echo.Query != "print=from-sdk" {
		t.Errorf("InvokeFunction: %d %+v %v", res.StatusCode, echo, err)
	}
	if echo.Header["X-Forwarded-For"] == nil || echo.Header["X-Forwarded-Host"] == nil || echo.Header["X-Forwarded-Proto"][0] != "http" {
		t.Errorf("forwarded headers: %v", echo.Header)
	}
	// go-sdk called /function/<name>.openfaas-fn: the prefix is the path it used.
	if p := echo.Header["X-Forwarded-Prefix"]; len(p) != 1 || p[0] != "/function/"+name+".openfaas-fn" {
		t.Errorf("X-Forwarded-Prefix %q, want /function/%s.openfaas-fn", p, name)
	}

	// Logs: the line printed above, then a followed one.
	msgs, err := b.client.GetLogs(ctx, name, "", false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for m := range msgs {
		if m.Text == "from-sdk" && m.Name == name && m.Instance != "" {
			found = true
		}
	}
	if !found {
		t.Error("GetLogs: printed line missing")
	}
	followCtx, cancelFollow := context.WithTimeout(ctx, 10*time.Second)
	defer cancelFollow()
	follow, err := b.client.GetLogs(followCtx, name, "", true, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-follow // the tail line
	b.get(name, "/print?text=followed")
	for m := range follow {
		if m.Text == "followed" {
			cancelFollow()
			break
		}
	}
	if followCtx.Err() == context.DeadlineExceeded {
		t.Error("followed log line not streamed")
	}

	// Scale up and down.
	if err := b.client.ScaleFunction(ctx, name, "", 3); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, func() bool {
		st, err := b.client.GetFunction(ctx, name, "")
		return err == nil && st.Replicas == 3 && st.AvailableReplicas == 3
	}, "3 available replicas")

	pids := map[string]bool{}
	for range 9 {
		_, body := b.get(name, "/")
		var e struct{ PID int }
		_ = json.Unmarshal([]byte(body), &e)
		pids[fmt.Sprint(e.PID)] = true
	}
	if len(pids) != 3 {
		t.Errorf("round-robin reached %d replicas, want 3", len(pids))
	}
	if err := b.client.ScaleFunction(ctx, name, "", 0); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.get(name, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("no replica: %d, want 503", code)
	}
	if err := b.client.ScaleFunction(ctx, name, "", 1); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, func() bool {
		code, _ := b.get(name, "/")
		return code == 200
	}, "1 available replica")

	if err := b.client.ScaleFunction(ctx, "nope", "", 1); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("scale unknown: %v", err)
	}

	st, err = b.client.GetFunction(ctx, name, "")
	if err != nil || st.InvocationCount < 10 {
		t.Errorf("invocationCount = %v, %v", st.InvocationCount, err)
	}
	res, err = http.Get(b.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(res.Body)
	var metric string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `gateway_function_invocation_total{code="200",function_name="`+name+`.openfaas-fn"}`) {
			metric = sc.Text()
		}
	}
	res.Body.Close()
	if metric == "" {
		t.Error("gateway_function_invocation_total missing from /metrics")
	}

	if err := b.client.DeleteFunction(ctx, name, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.GetFunction(ctx, name, ""); err == nil {
		t.Error("GetFunction after delete succeeded")
	}
	if code, _ := b.get(name, "/"); code != http.StatusNotFound {
		t.Errorf("invoke after delete: %d, want 404", code)
	}
	if err := b.client.DeleteFunction(ctx, name, ""); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("delete twice: %v", err)
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return len(processesOf(name)) == 0 }, "processes gone")
	if err := b.client.DeleteSecret(ctx, "api-key", ""); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.system(http.MethodGet, "/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

// TestBadInput checks each refusal and that nothing is left running.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ReadyTimeout = 1500 * time.Millisecond
	b := start(t, cfg, Options{})

	deploy := func(d types.FunctionDeployment) (int, string) {
		body, _ := json.Marshal(d)
		return b.system(http.MethodPost, "/system/functions", string(body))
	}
	if code, msg := deploy(types.FunctionDeployment{Service: "ghost", Image: "ghcr.io/aigw/no-such-binary:1.0"}); code != 400 || !strings.Contains(msg, "no-such-binary") || !strings.Contains(msg, "does not exist") {
		t.Errorf("unresolvable image: %d %q", code, msg)
	}
	if len(b.g.Registry().List()) != 0 || len(processesOf("ghost")) != 0 {
		t.Error("something was started for an unresolvable image")
	}
	for _, name := range []string{"", "../x", "Upper", "a_b", "-a", strings.Repeat("a", 64)} {
		if code, msg := deploy(types.FunctionDeployment{Service: name, Image: testImage}); code != 400 || !strings.Contains(msg, "function name") {
			t.Errorf("name %q: %d %q", name, code, msg)
		}
	}
	if code, _ := deploy(types.FunctionDeployment{Service: "ns", Image: testImage, Namespace: "other"}); code != 400 {
		t.Errorf("other namespace: %d", code)
	}
	if code, _ := b.system(http.MethodPost, "/system/functions", "{not json"); code != 400 {
		t.Errorf("bad JSON: %d", code)
	}
	if code, msg := deploy(types.FunctionDeployment{Service: "nosecret", Image: testImage, Secrets: []string{"missing"}}); code != 400 || !strings.Contains(msg, "missing") {
		t.Errorf("missing secret: %d %q", code, msg)
	}

	sick := fnName("sick")
	code, msg := deploy(types.FunctionDeployment{Service: sick, Image: testImage, EnvVars: map[string]string{"TESTFN_UNHEALTHY": "1"}})
	if code != http.StatusBadGateway || !strings.Contains(msg, "/_/health") || !strings.Contains(msg, "testfn starting") {
		t.Errorf("never healthy: %d %q", code, msg)
	}
	if _, err := b.client.GetFunction(t.Context(), sick, ""); err == nil {
		t.Error("an unhealthy function was kept")
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return len(processesOf(sick)) == 0 }, "unhealthy processes stopped")

	// Basic auth on /system/*, none on /function/*.
	for _, c := range []struct{ user, pass string }{{"admin", "wrong"}, {"", ""}, {"root", b.pass}} {
		req, _ := http.NewRequest(http.MethodGet, b.url+"/system/functions", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("credentials %q/%q: %d, want 401", c.user, c.pass, res.StatusCode)
		}
	}
	if code, _ := b.get("nope", "/"); code != 404 {
		t.Errorf("unknown function: %d, want 404", code)
	}
	res, err := http.Post(b.url+"/async-function/nope", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("async without Redis: %d, want 503", res.StatusCode)
	}
	fi, err := os.Stat(filepath.Join(cfg.SecretsDir, "basic-auth-password"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated password file: %v %v", fi, err)
	}
}

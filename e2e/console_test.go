package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

// EnvConsoleScreenshots, when set to a directory (or to 1 for docs/console),
// makes TestConsole save a PNG of each page it visits there.
const EnvConsoleScreenshots = "AIGW_CONSOLE_SCREENSHOTS"

// browser starts headless Chromium (Debian's chromium; scripts/chromium.sh
// installs it) for the test; it is closed when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if testenv.Required() {
			t.Fatal("no chromium on PATH: run scripts/chromium.sh (make test does)")
		}
		t.Skip("no chromium on PATH: run scripts/chromium.sh")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page drives one browser tab against the console.
type page struct {
	t        *testing.T
	ctx      context.Context
	base     string // the console's URL, ending in /
	shotsDir string
}

// run runs actions with a deadline, failing the test with what the page shows.
func (p *page) run(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail(what, err)
	}
}

// fail ends the test with err and what the page shows.
func (p *page) fail(what string, err error) {
	p.t.Helper()
	text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.getElementById("main").innerText`))
	p.t.Fatalf("%s: %v\npage shows:\n%s", what, err, text)
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail(expr, err)
	}
	return v
}

// poll waits until a JavaScript expression is true on the page.
func (p *page) poll(what, expr string, d time.Duration) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d))(ctx, t)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return chromedp.Void{}, err
	}
}

// cookies returns the browser's cookies for the console.
func (p *page) cookies() []*network.Cookie {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{p.base}})
	if err != nil {
		p.fail("cookies", err)
	}
	return res.Cookies
}

// open navigates to the console's fragment route (e.g. "#/jobs").
func (p *page) open(route, waitFor string) {
	p.t.Helper()
	p.run("open "+route, 20*time.Second, chromedp.Navigate(p.base+route), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// shot saves the page as docs/console/<name>.png when screenshots are asked for.
func (p *page) shot(name string) {
	p.t.Helper()
	if p.shotsDir == "" {
		return
	}
	// Let the live parts (progress transitions, a refresh) settle first.
	p.run("settle", 5*time.Second, chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(p.shotsDir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.fail("read "+sel, err)
	}
	return s
}

// createClient makes an API client of tenant with both client scopes and
// returns its id and secret.
func (s *system) createClient(t *testing.T, name, tenant string) (id, secret string) {
	t.Helper()
	out := run(t, s.env, filepath.Join(binDir, "auth"), "create-client", "-name", name, "-tenant", tenant, "-scopes", "jobs:read,jobs:write")
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			switch k {
			case "AIGW_CLIENT_ID":
				id = v
			case "AIGW_CLIENT_SECRET":
				secret = v
			}
		}
	}
	if id == "" || secret == "" {
		t.Fatalf("create-client printed %q", out)
	}
	return id, secret
}

// TestConsole drives the web console in headless Chromium against the whole
// system (gateway, the four functions from stack.yml, a worker): sign in with
// an API client, run echo from the form generated from its JSON Schema and
// watch the progress bar reach 100 %, cancel a running job, find another
// tenant's job nowhere (and a 404 page at its address), fall back to sign-in
// when the session's token has expired, and, signed in with the admin token,
// see every tenant's jobs, the pools and the admin page. The console's calls
// to the API go through a proxy here that checks each against the OpenAPI
// document.
func TestConsole(t *testing.T) {
	ctx := browser(t)
	// The console reaches the gateway through this test's proxy.
	var gateway atomic.Pointer[url.URL]
	upstream := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(gateway.Load())
			pr.Out.Host = ""
		},
		FlushInterval: -1,
		Transport:     consoleTransport(t),
	})
	t.Cleanup(upstream.Close)
	s := up(t, "AIGW_CONSOLE_UPSTREAM="+upstream.URL)
	gw, _ := url.Parse(s.gateway)
	gateway.Store(gw)
	s.registerEcho()

	// Another tenant's job, submitted with curl's means.
	otherID, otherSecret := s.createClient(t, "globex-app", "globex")
	var other jobView
	if code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "globex's secret"}}, &other,
		"Authorization", "Bearer "+s.getToken(otherID, otherSecret)); code != http.StatusAccepted {
		t.Fatalf("globex's submit: %d", code)
	}
	clientID, clientSecret := s.createClient(t, "console", s.tenant)

	p := &page{t: t, ctx: ctx, base: s.gateway + "/function/console/"}
	if d := os.Getenv(EnvConsoleScreenshots); d != "" {
		if d == "1" {
			d = filepath.Join(repo, "docs", "console")
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p.shotsDir = d
	}

	// Not signed in: any page goes to sign-in.
	p.open("#/jobs", "#signin-form")
	if eval[bool](p, `!document.getElementById("top").hidden || document.getElementById("top").offsetHeight > 0`) {
		t.Error("the navigation shows before sign-in")
	}
	p.shot("signin")
	p.run("wrong secret", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#client_id"), clientID), chromedp.SendKeys(chromedp.CSS("#client_secret"), "nope"),
		chromedp.Click(chromedp.CSS("#signin-submit")), chromedp.WaitVisible(chromedp.CSS("#signin-form .error")))
	eval[bool](p, `(document.getElementById("client_secret").value = "", true)`)
	p.run("sign in", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#client_secret"), clientSecret),
		chromedp.Click(chromedp.CSS("#signin-submit")), chromedp.WaitVisible(chromedp.CSS("#page-jobs")))

	// The session is a cookie scripts cannot read, kept to the console's path.
	cookies := p.cookies()
	jsCookies := eval[string](p, `document.cookie`)
	if len(cookies) != 1 || cookies[0].Name != "aigw_console" || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict ||
		cookies[0].Path != "/function/console" || cookies[0].Expires <= 0 || jsCookies != "" {
		t.Fatalf("session cookie: %+v (document.cookie %q)", cookies, jsCookies)
	}

	// The algorithms, and the run-it form made from echo's JSON Schema.
	p.open("#/algorithms", `#algorithms-table tr[data-algorithm="echo"]`)
	p.shot("algorithms")
	p.open("#/algorithms/echo", "#run-form #input-message")
	p.shot("algorithm")
	if typ := attr(t, p, "#input-sleep_ms", "type"); typ != "number" {
		t.Errorf("sleep_ms (an integer) is an input of type %q, want number", typ)
	}
	p.run("run echo", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#input-message"), "hello from the console"),
		chromedp.SendKeys(chromedp.CSS("#input-sleep_ms"), "3000"),
		chromedp.Click(chromedp.CSS("#run-submit")), chromedp.WaitVisible(chromedp.CSS("#page-job")))
	if pct := p.text("#progress-pct"); pct != "0 %" {
		t.Errorf("a fresh job's progress: %q, want 0 %%", pct)
	}
	// The worker's progress line arrives through the event stream, then the bar fills.
	p.run("progress event", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(`#progress-msg`)),
		p.poll("progress message", `document.getElementById("progress-msg").textContent === "sleeping 3000 ms"`, 25*time.Second))
	p.run("progress 100 %", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(`#progress-fill.done`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-state [data-state="succeeded"]`)))
	if pct := p.text("#progress-pct"); pct != "100 %" {
		t.Errorf("progress after success: %q", pct)
	}
	if out := p.text("#job-output"); !strings.Contains(out, `"hello from the console"`) {
		t.Errorf("output: %q", out)
	}
	if tl := p.text("#timeline"); !strings.Contains(tl, "queued") || !strings.Contains(tl, "running") || !strings.Contains(tl, "succeeded") {
		t.Errorf("timeline: %q", tl)
	}
	p.shot("job")
	ranID := eval[string](p, `document.getElementById("page-job").dataset.job`)
	if j := s.waitState(ranID, "succeeded", 10*time.Second); !strings.Contains(string(j.Output), "hello from the console") {
		t.Errorf("the API has %s's output %s", ranID, j.Output)
	}

	// Cancel a running job.
	p.open("#/algorithms/echo", "#run-form #input-message")
	p.run("run a long echo", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#input-message"), "long"), chromedp.SendKeys(chromedp.CSS("#input-sleep_ms"), "30000"),
		chromedp.Click(chromedp.CSS("#run-submit")), chromedp.WaitVisible(chromedp.CSS("#page-job")),
		chromedp.WaitVisible(chromedp.CSS(`#job-state [data-state="running"]`)))
	longID := eval[string](p, `document.getElementById("page-job").dataset.job`)
	p.run("cancel", 30*time.Second, chromedp.Click(chromedp.CSS("#job-cancel")),
		chromedp.WaitVisible(chromedp.CSS(`#job-state [data-state="canceled"]`)), chromedp.WaitNotVisible(chromedp.CSS("#job-cancel")))
	s.waitState(longID, "canceled", 10*time.Second)

	// A webhook whose receiver turns the first delivery away for good (410):
	// the job page shows it failed, and Redeliver sends the same message again.
	var hits atomic.Int32
	ids := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- r.Header.Get("webhook-id")
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	p.open("#/algorithms/echo", "#run-form #input-message")
	p.run("run with a webhook", 60*time.Second,
		chromedp.SendKeys(chromedp.CSS("#input-message"), "hooked"), chromedp.SendKeys(chromedp.CSS("#run-webhook"), hook.URL+"/hook"),
		chromedp.Click(chromedp.CSS("#run-submit")), chromedp.WaitVisible(chromedp.CSS("#page-job")),
		chromedp.WaitVisible(chromedp.CSS(`#job-state [data-state="succeeded"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-deliveries tr[data-status="failed"] button.redeliver`)))
	p.run("redeliver", 60*time.Second, chromedp.Click(chromedp.CSS(`#job-deliveries tr[data-status="failed"] button.redeliver`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-deliveries tr[data-status="delivered"]`)))
	if n := hits.Load(); n != 2 || <-ids != <-ids {
		t.Errorf("the receiver got %d requests; want the same webhook-id twice", n)
	}
	p.shot("job-webhook")

	// The jobs list: this tenant's jobs, live; globex's nowhere.
	p.open("#/jobs", `#jobs-table tr[data-job="`+longID+`"]`)
	p.run("live list", 15*time.Second, chromedp.WaitVisible(chromedp.CSS(`#jobs-table tr[data-job="`+ranID+`"] [data-state="succeeded"]`)))
	p.shot("jobs")
	for _, route := range []string{"#/jobs", "#/jobs?state=queued", "#/pools"} {
		p.open(route, "#main > div[id^=page-]")
		p.run("settle "+route, 10*time.Second, chromedp.Sleep(500*time.Millisecond))
		body := eval[string](p, `document.body.innerText`)
		if strings.Contains(body, other.ID) || strings.Contains(body, "globex") {
			t.Errorf("%s shows globex's job %s:\n%s", route, other.ID, body)
		}
	}
	p.shot("pools-tenant")
	p.open("#/jobs/"+other.ID, "#page-404")
	body := eval[string](p, `document.body.innerText`)
	if strings.Contains(body, "globex's secret") || !strings.Contains(body, "404") {
		t.Errorf("another tenant's job page:\n%s", body)
	}
	p.shot("job-404")

	// An expired session: back to sign-in, wherever the page was.
	expired := expiredToken(t, s)
	yes := true
	if _, err := chromedp.Call(p.ctx, network.SetCookie, network.SetCookieParams{Name: "aigw_console", Value: expired, URL: p.base,
		Path: "/function/console", HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict}); err != nil {
		p.fail("expire the session", err)
	}
	p.open("#/jobs", "#page-signin")
	if cs := p.cookies(); len(cs) != 0 {
		t.Errorf("cookies after the session expired: %+v", cs)
	}

	// A job that times out with no retry left is dead-lettered.
	var doomed jobView
	if code := s.api("POST", "/v1/algorithms/echo/jobs", map[string]any{"input": map[string]any{"message": "doomed", "sleep_ms": 5000},
		"policy": map[string]any{"max_retries": 0, "execution_timeout": "1s"}}, &doomed); code != http.StatusAccepted {
		t.Fatalf("doomed submit: %d", code)
	}
	s.waitState(doomed.ID, "failed", 30*time.Second)

	// The operator: every tenant's jobs, the pools' workers and dead letters, the admin page.
	p.run("operator sign-in", 20*time.Second, chromedp.Click(chromedp.CSS("#tab-admin")),
		chromedp.SendKeys(chromedp.CSS("#admin_token"), s.admin), chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("#page-jobs")),
		chromedp.WaitVisible(chromedp.CSS(`#jobs-table tr[data-job="`+other.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#jobs-table tr[data-job="`+ranID+`"]`)))
	p.shot("jobs-operator")
	p.open("#/pools", `section[data-pool="`+s.pool+`"] table`)
	if w := p.text(`section[data-pool="` + s.pool + `"] table`); !strings.Contains(w, "e2e-"+s.pool) {
		t.Errorf("pool %s's workers: %q", s.pool, w)
	}
	deadRow := `#dead-` + s.pool + ` tr[data-job="` + doomed.ID + `"]`
	p.run("dead letter", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(deadRow)))
	p.shot("pools")
	p.run("redrive", 30*time.Second, chromedp.Click(chromedp.CSS(deadRow+" button.redrive")),
		chromedp.WaitVisible(chromedp.CSS(`#dead-`+s.pool+` .notice`)))
	// The page updates in place: its refreshes keep the pool's section, and
	// the redrive's notice in it, and redraw only rows whose data changed.
	eval[bool](p, `(window.kept = document.querySelector('section[data-pool="`+s.pool+`"]'), `+
		`window.refreshes = +document.getElementById("page-pools").dataset.refreshes, true)`)
	p.run("two refreshes", 20*time.Second,
		p.poll("two refreshes", `+document.getElementById("page-pools").dataset.refreshes >= window.refreshes + 2`, 15*time.Second))
	if !eval[bool](p, `window.kept === document.querySelector('section[data-pool="`+s.pool+`"]') && !!document.querySelector('#dead-`+s.pool+` .notice')`) {
		t.Error("a refresh of the pools page redrew the pool's section or dropped the redrive's notice")
	}
	testwait.Eventually(t, 30*time.Second, func() bool {
		var j jobView
		s.api("GET", "/v1/jobs/"+doomed.ID, nil, &j)
		return j.Attempt == 2 && j.State == "failed"
	}, "the redriven job's second attempt, timed out too")
	// Retry from its page: a third attempt.
	p.open("#/jobs/"+doomed.ID, `#job-state [data-state="failed"]`)
	p.run("retry", 30*time.Second, chromedp.Click(chromedp.CSS("#job-retry")), chromedp.WaitVisible(chromedp.CSS("#job-notice")),
		chromedp.WaitNotVisible(chromedp.CSS("#job-retry")))
	testwait.Eventually(t, 30*time.Second, func() bool {
		var j jobView
		s.api("GET", "/v1/jobs/"+doomed.ID, nil, &j)
		return j.Attempt == 3
	}, "the retried job's third attempt")
	p.open("#/admin", `#clients-table tr[data-client="`+clientID+`"]`)
	p.run("create a client", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#new-client-name"), "from-the-console"), chromedp.SendKeys(chromedp.CSS("#new-client-tenant"), "initech"),
		chromedp.Click(chromedp.CSS(`#new-client button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#created-secret")))
	newID, newSecret := p.text("#created-id"), p.text("#created-secret")
	if tok := s.getToken(newID, newSecret); tok == "" {
		t.Error("the console's new client gets no token")
	}
	p.run("webhook secret", 15*time.Second, chromedp.WaitVisible(chromedp.CSS(`#webhook-secrets [data-tenant="initech"]`)),
		chromedp.Click(chromedp.CSS(`#webhook-secrets [data-tenant="globex"] button`)),
		p.poll("globex's webhook secret", `document.querySelector('#webhook-secrets [data-tenant="globex"] .mono').textContent.startsWith("whsec_")`,
			10*time.Second))
	p.run("a tenant without clients", 15*time.Second, chromedp.SendKeys(chromedp.CSS("#secret-tenant"), "hooli"),
		chromedp.Click(chromedp.CSS(`#secret-lookup button`)), chromedp.Click(chromedp.CSS(`#webhook-secrets [data-tenant="hooli"] button`)),
		p.poll("hooli's webhook secret", `document.querySelector('#webhook-secrets [data-tenant="hooli"] .mono').textContent.startsWith("whsec_")`,
			10*time.Second))
	p.shot("admin")
	eval[bool](p, `(window.confirm = () => true, true)`) // confirm() answers yes
	p.run("revoke", 15*time.Second, chromedp.Click(chromedp.CSS(`#clients-table tr[data-client="`+newID+`"] button.danger`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#clients-table tr[data-client="`+newID+`"] button.danger`)))
	req, _ := http.NewRequest("POST", s.gateway+"/function/auth/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(newID, newSecret)
	if code := do(t, req, nil); code != http.StatusUnauthorized {
		t.Errorf("a revoked client's token request: %d, want 401", code)
	}

	// Remote executors: a credential made on the admin page (its token shown
	// once) joins the pool through the executor API, shows on the pools page
	// beside the agents (address, heartbeat, jobs held), and is revoked from
	// the admin page: its next call is refused.
	p.run("create an executor", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#new-executor-pool"), s.pool), chromedp.SendKeys(chromedp.CSS("#new-executor-name"), "console-laptop"),
		chromedp.Click(chromedp.CSS(`#new-executor button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#executor-created-token")))
	exID, exToken := p.text("#executor-created-id"), p.text("#executor-created-token")
	exRow := `#executors-table tr[data-executor="` + exID + `"]`
	p.run("the executor listed", 15*time.Second, chromedp.WaitVisible(chromedp.CSS(exRow+" button.danger")))
	if row := p.text(exRow); !strings.Contains(row, "console-laptop") || !strings.Contains(row, s.pool) || strings.Contains(row, exToken) {
		t.Errorf("the executor's row: %q", row)
	}

	// A tenant's quotas and fair-share weights, set on the admin page and read
	// back through the API;
	// a bad value is refused with the API's message naming the field.
	p.run("load quotas", 15*time.Second, chromedp.SendKeys(chromedp.CSS("#quota-tenant"), "initech"),
		chromedp.Click(chromedp.CSS(`#quota-lookup button`)), chromedp.WaitVisible(chromedp.CSS("#quota-form")))
	last := `#quota-table tbody tr:last-child `
	p.run("a bad quota", 15*time.Second, chromedp.Click(chromedp.CSS("#quota-add")),
		chromedp.SendKeys(chromedp.CSS(last+`[name="pool"]`), s.pool), chromedp.SendKeys(chromedp.CSS(last+`[name="max_running"]`), "2"),
		chromedp.SendKeys(chromedp.CSS(last+`[name="gpu_seconds"]`), "3600"), chromedp.SendKeys(chromedp.CSS(last+`[name="window"]`), "5s"),
		chromedp.Click(chromedp.CSS("#quota-save")), chromedp.WaitVisible(chromedp.CSS("#quota-note .error")))
	if msg := p.text("#quota-note"); !strings.Contains(msg, "pools[0].window") {
		t.Errorf("a 5 s window's error: %q, want it to name pools[0].window", msg)
	}
	eval[bool](p, `(document.querySelector('#quota-table tbody tr:last-child [name="window"]').value = "", true)`)
	p.run("save quotas", 15*time.Second, chromedp.SendKeys(chromedp.CSS(last+`[name="window"]`), "24h"),
		chromedp.SendKeys(chromedp.CSS(last+`[name="weight"]`), "3"), chromedp.SendKeys(chromedp.CSS("#quota-weight"), "2"),
		chromedp.Click(chromedp.CSS("#quota-save")), chromedp.WaitVisible(chromedp.CSS("#quota-saved")))
	var quotas struct {
		Tenant string  `json:"tenant"`
		Weight float64 `json:"weight"`
		Pools  []struct {
			Pool       string  `json:"pool"`
			MaxRunning int     `json:"max_running"`
			GPUSeconds float64 `json:"gpu_seconds"`
			Window     string  `json:"window"`
			Weight     float64 `json:"weight"`
		} `json:"pools"`
	}
	if code := s.api("GET", "/v1/admin/tenants/initech/quotas", nil, &quotas, "Authorization", "Bearer "+s.operatorToken()); code != http.StatusOK ||
		len(quotas.Pools) != 1 || quotas.Pools[0].Pool != s.pool || quotas.Pools[0].MaxRunning != 2 || quotas.Pools[0].GPUSeconds != 3600 ||
		quotas.Pools[0].Window != "24h" || quotas.Pools[0].Weight != 3 || quotas.Weight != 2 {
		t.Errorf("initech's quotas after the console saved them: %d %+v", code, quotas)
	}
	p.shot("admin-quotas")

	ex := executorapi.NewClient(s.gateway+"/function/executors", exToken, nil)
	reg, err := ex.Register(context.Background(), executorapi.Register{Version: "console-test", Slots: 1})
	if err != nil {
		t.Fatalf("the console's executor registers: %v", err)
	}
	p.open("#/pools", `section[data-pool="`+s.pool+`"] tr[data-kind="executor"][data-worker="`+reg.Node+`"]`)
	exWorker := `section[data-pool="` + s.pool + `"] tr[data-kind="executor"][data-worker="` + reg.Node + `"]`
	if addr, held := p.text(exWorker+" td.addr"), p.text(exWorker+" td.held"); !strings.Contains(addr, "127.0.0.1") || held != "0" {
		t.Errorf("the executor's row: address %q, jobs held %q", addr, held)
	}
	if hb := p.text(exWorker + " td.heartbeat"); !strings.HasSuffix(hb, "s ago") {
		t.Errorf("the executor's heartbeat: %q", hb)
	}
	if n := eval[int](p, `document.querySelectorAll('section[data-pool="`+s.pool+`"] tr[data-kind="agent"]').length`); n < 1 {
		t.Errorf("the pool's agents beside the executor: %d", n)
	}
	p.shot("pools-executors")
	p.open("#/admin", exRow+" button.danger")
	eval[bool](p, `(window.confirm = () => true, true)`)
	p.run("revoke the executor", 15*time.Second, chromedp.Click(chromedp.CSS(exRow+" button.danger")),
		chromedp.WaitNotPresent(chromedp.CSS(exRow+" button.danger")))
	if _, err := ex.Register(context.Background(), executorapi.Register{Version: "console-test", Slots: 1}); executorapi.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("the revoked executor's next call: %v, want 401", err)
	}

	// Signing out ends the session.
	p.run("sign out", 15*time.Second, chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#page-signin")))
	if cs := p.cookies(); len(cs) != 0 {
		t.Errorf("cookies after signing out: %+v", cs)
	}
	p.open("#/admin", "#page-signin")
}

// attr reads an attribute of the first element matching sel.
func attr(t *testing.T, p *page, sel, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		p.fail("attribute "+name+" of "+sel, err)
	}
	return v.Value
}

// expiredToken is a token of the test's tenant, signed with the system's key,
// that expired a minute ago: what the session cookie holds when a session ends.
func expiredToken(t *testing.T, s *system) string {
	t.Helper()
	key, err := auth.ParsePrivateKeyPEM([]byte(readFile(t, filepath.Join(s.secrets, "aigw-jwt-signing-key"))))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := auth.Sign(key, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "aigw", Subject: "console", Audience: jwt.ClaimStrings{"aigw-api"},
			IssuedAt: jwt.NewNumericDate(now.Add(-16 * time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-16 * time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))},
		Tenant: s.tenant, Scope: "jobs:read jobs:write",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// consoleTransport carries the console's calls to the gateway, checking each
// against the OpenAPI document.
func consoleTransport(t *testing.T) http.RoundTripper {
	t.Helper()
	return apispec.Transport(t, nil)
}

// operatorToken is an operator's access token (POST /admin/token with the
// admin token), as the console's operator holds.
func (s *system) operatorToken() string {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.gateway+"/function/auth/admin/token", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := do(s.t, req, &tok); code != http.StatusOK || tok.AccessToken == "" {
		s.t.Fatalf("operator token: %d", code)
	}
	return tok.AccessToken
}

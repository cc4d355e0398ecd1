package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testwait"
)

func TestAlgorithmsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	r := e.want(t, e.do(t, "PUT", "/v1/algorithms/"+algoName, e.token, echoDef(e.pool, "1.0.0")), http.StatusOK)
	var stored struct{ Name, Pool string }
	r.decode(t, &stored)
	if stored.Name != algoName || stored.Pool != e.pool {
		t.Fatalf("stored %s", r.body)
	}
	e.want(t, e.do(t, "PUT", "/v1/algorithms/"+algoName, e.token, strings.Replace(echoDef(e.pool, "1.10.0"), `{`, `{"name":"echo",`, 1)), http.StatusCreated)

	r = e.want(t, e.do(t, "GET", "/v1/algorithms", e.token, ""), http.StatusOK)
	var list struct {
		Algorithms []struct {
			Name, Version, Pool string
			Versions            []string
			InputSchema         json.RawMessage `json:"input_schema"`
			Runtime             any
		}
	}
	r.decode(t, &list)
	if len(list.Algorithms) != 1 || list.Algorithms[0].Version != "1.10.0" ||
		fmt.Sprint(list.Algorithms[0].Versions) != "[1.0.0 1.10.0]" || len(list.Algorithms[0].InputSchema) == 0 || list.Algorithms[0].Runtime != nil {
		t.Fatalf("catalog %s", r.body)
	}
	r = e.want(t, e.do(t, "GET", "/v1/algorithms/echo?version=1.0.0", e.token, ""), http.StatusOK)
	if !strings.Contains(string(r.body), `"version":"1.0.0"`) {
		t.Fatalf("version 1.0.0: %s", r.body)
	}
	e.want(t, e.do(t, "GET", "/v1/algorithms/nope", e.token, ""), http.StatusNotFound)
	e.want(t, e.do(t, "GET", "/v1/algorithms/echo?version=9.9.9", e.token, ""), http.StatusNotFound)

	// Bad definitions name the field.
	r = e.want(t, e.do(t, "PUT", "/v1/algorithms/other", e.token, `{"name":"echo","version":"1.0.0"}`), http.StatusBadRequest)
	if _, msg := r.errorCode(t); !strings.Contains(msg, "does not match") {
		t.Fatalf("name mismatch: %s", msg)
	}
	r = e.want(t, e.do(t, "PUT", "/v1/algorithms/echo", e.token, strings.Replace(echoDef(e.pool, "2.0.0"), `"timeout_ms":30000`, `"timeout_ms":-5`, 1)), http.StatusUnprocessableEntity)
	if code, msg := r.errorCode(t); code != "invalid_definition" || !strings.Contains(msg, "timeout_ms") {
		t.Fatalf("bad timeout: %s %s", code, msg)
	}
	r = e.want(t, e.do(t, "PUT", "/v1/algorithms/echo", e.token, `{"version":"1.0.0","colour":"red"}`), http.StatusBadRequest)
	if _, msg := r.errorCode(t); !strings.Contains(msg, "colour") {
		t.Fatalf("unknown field: %s", msg)
	}
	pools, err := e.reg.Pools(e.ctx)
	if err != nil || !contains(pools, e.pool) {
		t.Fatalf("registering did not record pool %s: %v %v", e.pool, pools, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestJobsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)

	// Submit, get, list with a cursor.
	var ids []string
	for i := range 3 {
		j := e.submit(t, fmt.Sprintf(`{"input":{"message":"m%d"},"policy":{"priority":"high","ttl":"10m"}}`, i))
		if j.State != "queued" || j.Pool != e.pool || j.Version != "1.0.0" || j.Attempt != 1 {
			t.Fatalf("submitted %+v", j)
		}
		ids = append(ids, j.ID)
	}
	var got jobReply
	e.want(t, e.do(t, "GET", "/v1/jobs/"+ids[0], e.token, ""), http.StatusOK).decode(t, &got)
	if got.ID != ids[0] || got.QueuePosition == nil || *got.QueuePosition != 3 {
		t.Fatalf("got %+v (queue position: want 3, the pool's ready high jobs)", got)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		var p struct {
			Jobs       []jobReply
			NextCursor string `json:"next_cursor"`
		}
		e.want(t, e.do(t, "GET", "/v1/jobs?limit=2&state=queued&algorithm=echo"+cursor, e.token, ""), http.StatusOK).decode(t, &p)
		for _, j := range p.Jobs {
			seen = append(seen, j.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + p.NextCursor
		if page > 3 {
			t.Fatal("paging does not end")
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint([]string{ids[2], ids[1], ids[0]}) {
		t.Fatalf("listed %v, want %v newest first", seen, ids)
	}
	since := escapeQuery(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	var empty struct{ Jobs []jobReply }
	e.want(t, e.do(t, "GET", "/v1/jobs?since="+since, e.token, ""), http.StatusOK).decode(t, &empty)
	if len(empty.Jobs) != 0 {
		t.Fatalf("since the future: %v", empty.Jobs)
	}

	// Cancel a queued job: 200, then 409.
	var canceled jobReply
	e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[0]+"/cancel", e.token, ""), http.StatusOK).decode(t, &canceled)
	if canceled.State != "canceled" {
		t.Fatalf("canceled %+v", canceled)
	}
	r := e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[0]+"/cancel", e.token, ""), http.StatusConflict)
	if code, msg := r.errorCode(t); code != "conflict" || !strings.Contains(msg, "canceled") {
		t.Fatalf("second cancel: %s %s", code, msg)
	}

	// Cancel a running job: 202, the worker is asked.
	if _, err := e.jobs.Transition(e.ctx, ids[1], jobstore.Change{From: job.Queued, To: job.Running, Worker: "w1"}); err != nil {
		t.Fatal(err)
	}
	e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[1]+"/cancel", e.token, ""), http.StatusAccepted)
	if req, err := e.events.CancelRequested(e.ctx, ids[1]); err != nil || !req[ids[1]] {
		t.Fatalf("no cancel request: %v %v", req, err)
	}

	// Retry: 409 for a queued job, 202 for a failed one.
	e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[2]+"/retry", e.token, ""), http.StatusConflict)
	if _, err := e.jobs.Transition(e.ctx, ids[1], jobstore.Change{From: job.Running, To: job.Failed,
		Error: &job.Error{Code: "runtime_error", Message: "exit 1"}}); err != nil {
		t.Fatal(err)
	}
	var retried jobReply
	e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[1]+"/retry", e.token, ""), http.StatusAccepted).decode(t, &retried)
	if retried.State != "queued" || retried.Attempt != 2 {
		t.Fatalf("retried %+v", retried)
	}
	if ok, err := e.queue.Contains(e.ctx, e.pool, ids[1]); err != nil || !ok {
		t.Fatalf("retried job not queued: %v %v", ok, err)
	}

	// Events of the canceled job: queued, canceled, then the stream ends.
	s := e.openEvents(t, ids[0], "")
	for _, want := range []string{"queued", "canceled"} {
		ev := s.nextEvent(t)
		var st events.State
		if ev.event != "state" || !events.ValidID(ev.id) || json.Unmarshal([]byte(ev.data), &st) != nil || string(st.State) != want {
			t.Fatalf("event %+v, want state %s", ev, want)
		}
	}
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("stream not closed after the terminal event: %v", err)
	}

	// Deliveries: the log of the tenant's job (empty: no webhook).
	r = e.want(t, e.do(t, "GET", "/v1/jobs/"+ids[0]+"/deliveries", e.token, ""), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != `{"deliveries":[]}` {
		t.Fatalf("deliveries %s", r.body)
	}

	// Another tenant sees none of it.
	other := e.is.Token(t, "globex", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	for _, p := range []string{"/v1/jobs/" + ids[2], "/v1/jobs/" + ids[2] + "/events", "/v1/jobs/" + ids[2] + "/deliveries"} {
		e.want(t, e.do(t, "GET", p, other, ""), http.StatusNotFound)
	}
	e.want(t, e.do(t, "POST", "/v1/jobs/"+ids[2]+"/cancel", other, ""), http.StatusNotFound)
	var none struct{ Jobs []jobReply }
	e.want(t, e.do(t, "GET", "/v1/jobs", other, ""), http.StatusOK).decode(t, &none)
	if len(none.Jobs) != 0 {
		t.Fatalf("another tenant lists %v", none.Jobs)
	}
}

func escapeQuery(s string) string { return strings.NewReplacer(":", "%3A", "+", "%2B").Replace(s) }

func TestPoolsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	e.submit(t, `{"input":{"message":"hi"},"policy":{"priority":"low"}}`)
	err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "gpu-1", Pool: e.pool, Version: "1.2.3", Slots: 2, SlotsBusy: 1,
		Running: []string{"secret-job"}, Addr: "10.0.0.1:9000",
		GPUs: []registry.GPU{{Index: 0, Name: "H100", MemoryTotalMB: 81559, Busy: true}, {Index: 1, Name: "H100", MemoryTotalMB: 81559}}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.reg.Remove(e.ctx, e.pool, "gpu-1") })
	// A remote executor (the executors function writes its entry) beside the agent.
	err = e.reg.Heartbeat(e.ctx, registry.Worker{Node: "laptop-1.ex1", Pool: e.pool, Kind: registry.KindExecutor, Version: "1.2.3",
		Slots: 1, SlotsBusy: 1, Running: []string{"secret-job-2"}, Addr: "203.0.113.7:51000"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.reg.Remove(e.ctx, e.pool, "laptop-1.ex1") })
	r := e.want(t, e.do(t, "GET", "/v1/pools", e.token, ""), http.StatusOK)
	var out struct{ Pools []poolView }
	r.decode(t, &out)
	var p *poolView
	for i := range out.Pools {
		if out.Pools[i].Name == e.pool {
			p = &out.Pools[i]
		}
	}
	if p == nil {
		t.Fatalf("pool %s missing: %s", e.pool, r.body)
	}
	slices.SortFunc(p.Workers, func(a, b workerView) int { return strings.Compare(a.Node, b.Node) })
	if len(p.Workers) != 2 || p.Workers[0].Node != "gpu-1" || p.Workers[0].Version != "1.2.3" || len(p.Workers[0].GPUs) != 2 ||
		p.Workers[0].Kind != "agent" || p.Workers[0].JobsHeld != 1 || p.Workers[0].Addr != "" ||
		p.Workers[0].GPUs[0].Name != "H100" || p.GPUs != (counts{Total: 2, Free: 1, Busy: 1}) || p.Slots != (counts{Total: 3, Free: 1, Busy: 2}) {
		t.Fatalf("pool %+v", p)
	}
	if x := p.Workers[1]; x.Node != "laptop-1.ex1" || x.Kind != "executor" || x.Addr != "203.0.113.7:51000" || x.JobsHeld != 1 || x.HeartbeatAt.IsZero() {
		t.Fatalf("executor %+v", x)
	}
	if p.Queue.Depth != 1 || p.Queue.Ready[job.Low] != 1 || p.Queue.Ready[job.High] != 0 {
		t.Fatalf("queue %+v", p.Queue)
	}
	if strings.Contains(string(r.body), "secret-job") || strings.Contains(string(r.body), "10.0.0.1") {
		t.Fatalf("pools leak job ids or addresses: %s", r.body)
	}
}

func TestSubmitWaits(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)

	// A "worker" finishes the job a little after it is submitted.
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			var id string
			var listErr error
			if !testwait.Poll(10*time.Second, func() bool {
				page, err := e.jobs.List(e.ctx, jobstore.Filter{Tenant: "acme", State: job.Queued})
				if err != nil {
					listErr = err
					return true
				}
				if len(page.Jobs) == 1 {
					id = page.Jobs[0].ID
				}
				return id != ""
			}) {
				return fmt.Errorf("no job to finish")
			}
			if listErr != nil {
				return listErr
			}
			time.Sleep(300 * time.Millisecond)
			j, err := e.jobs.Transition(e.ctx, id, jobstore.Change{From: job.Queued, To: job.Running, Worker: "w1"})
			if err != nil {
				return err
			}
			if _, err := e.events.PublishState(e.ctx, j); err != nil {
				return err
			}
			j, err = e.jobs.Transition(e.ctx, id, jobstore.Change{From: job.Running, To: job.Succeeded, Output: json.RawMessage(`{"echo":"hi"}`)})
			if err != nil {
				return err
			}
			_, err = e.events.PublishState(e.ctx, j)
			return err
		}()
	}()
	start := time.Now()
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"hi"}}`, "Prefer", "respond-async, wait=8"), http.StatusOK)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var j jobReply
	r.decode(t, &j)
	if j.State != "succeeded" || string(j.Output) != `{"echo":"hi"}` || r.header.Get("Preference-Applied") != "wait=8" {
		t.Fatalf("waited: %s %v", r.body, r.header)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a job finished after 0.3s answered after %s", took)
	}

	// Nobody finishes this one: 202 after the wait.
	start = time.Now()
	r = e.want(t, e.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"slow"}}`, "Prefer", "wait=1"), http.StatusAccepted)
	if took := time.Since(start); took < time.Second || took > 4*time.Second {
		t.Fatalf("wait=1 answered after %s", took)
	}
	if r.header.Get("Preference-Applied") != "" {
		t.Fatalf("Preference-Applied on a 202: %v", r.header)
	}
}

func TestConcurrentIdempotentSubmits(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"once"}}`, "Idempotency-Key", "order-7")
			if r.status != http.StatusAccepted {
				t.Errorf("submit %d: %d %s", i, r.status, r.body)
				return
			}
			var j jobReply
			if err := json.Unmarshal(r.body, &j); err != nil {
				t.Error(err)
			}
			ids[i] = j.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one key gave jobs %s and %s", ids[0], id)
		}
	}
	page, err := e.jobs.List(e.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("jobs %v %v, want one", len(page.Jobs), err)
	}
	if ok, err := e.queue.Contains(e.ctx, e.pool, ids[0]); err != nil || !ok {
		t.Fatalf("job not in the queue: %v %v", ok, err)
	}
	st, err := e.queue.Stats(e.ctx, e.pool)
	if err != nil || st.Depth() != 1 {
		t.Fatalf("queue depth %d %v, want one stream entry", st.Depth(), err)
	}
	evs, err := e.events.Read(e.ctx, ids[0], "", 100, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v %v, want one queued event", evs, err)
	}
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"x"}}`, "Idempotency-Key", strings.Repeat("k", 256)), http.StatusBadRequest)
	if _, msg := r.errorCode(t); !strings.Contains(msg, "Idempotency-Key") {
		t.Fatalf("long key: %s", msg)
	}
}

func TestEventsResumeWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	j := e.submit(t, `{"input":{"message":"hi"}}`)
	for i := range 5 {
		if _, err := e.events.Publish(e.ctx, j.ID, events.TypeProgress, events.Progress{Progress: float64(i) / 10}); err != nil {
			t.Fatal(err)
		}
	}
	// Read three events, then drop the connection.
	s := e.openEvents(t, j.ID, "")
	var got []string
	last := ""
	for range 3 {
		ev := s.nextEvent(t)
		got = append(got, ev.event+":"+ev.data)
		last = ev.id
	}
	_ = s.resp.Body.Close()

	// More events while disconnected, then the end.
	for i := 5; i < 8; i++ {
		if _, err := e.events.Publish(e.ctx, j.ID, events.TypeProgress, events.Progress{Progress: float64(i) / 10}); err != nil {
			t.Fatal(err)
		}
	}
	s = e.openEvents(t, j.ID, last)
	go func() {
		time.Sleep(500 * time.Millisecond) // the client waits through pings first
		if fin, err := e.jobs.Transition(e.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Canceled}); err == nil {
			_, _ = e.events.PublishState(e.ctx, fin)
		}
	}()
	pings := 0
	for {
		ev, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.ping {
			pings++
			continue
		}
		got = append(got, ev.event+":"+ev.data)
	}
	all, err := e.events.Read(e.ctx, j.ID, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ev := range all {
		want = append(want, string(ev.Type)+":"+string(ev.Data))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("resumed stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) != 10 || pings == 0 {
		t.Fatalf("%d events (want 10), %d pings (want some at a 200ms heartbeat)", len(want), pings)
	}

	// The finished job's stream replays from the start and ends; ?last_event_id works too.
	r := e.want(t, e.do(t, "GET", "/v1/jobs/"+j.ID+"/events?last_event_id="+all[8].ID, e.token, ""), http.StatusOK)
	if n := strings.Count(string(r.body), "\nevent: "); n != 1 || !strings.Contains(string(r.body), `"state":"canceled"`) {
		t.Fatalf("after the 9th event: %s", r.body)
	}
	e.want(t, e.do(t, "GET", "/v1/jobs/"+j.ID+"/events", e.token, "", "Last-Event-ID", "yesterday"), http.StatusBadRequest)
}

func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	j := e.submit(t, `{"input":{"message":"hi"}}`)
	readOnly := e.is.Token(t, "acme", auth.ScopeJobsRead)
	expired := e.is.Claims("acme", auth.ScopeJobsRead)
	expired.ExpiresAt.Time = time.Now().Add(-10 * time.Minute)
	expired.IssuedAt.Time = time.Now().Add(-20 * time.Minute)
	expired.NotBefore.Time = expired.IssuedAt.Time
	wrongAud := e.is.Claims("acme", auth.ScopeJobsRead)
	wrongAud.Audience = []string{"someone-else"}
	submitPath := "/v1/algorithms/echo/jobs"

	cases := []struct {
		name            string
		method, path    string
		token, body     string
		header          []string
		status          int
		code, inMessage string
	}{
		{"no token", "GET", "/v1/jobs", "", "", nil, 401, "unauthorized", "Bearer"},
		{"garbage token", "GET", "/v1/jobs", "not.a.jwt", "", nil, 401, "unauthorized", ""},
		{"expired token", "GET", "/v1/jobs", e.is.Sign(t, expired), "", nil, 401, "unauthorized", ""},
		{"wrong audience", "GET", "/v1/jobs", e.is.Sign(t, wrongAud), "", nil, 401, "unauthorized", ""},
		{"missing scope", "POST", submitPath, readOnly, `{"input":{"message":"x"}}`, nil, 403, "forbidden", "jobs:write"},
		{"missing admin scope", "PUT", "/v1/algorithms/echo", readOnly, echoDef(e.pool, "3.0.0"), nil, 403, "forbidden", "algorithms:admin"},
		{"unknown algorithm", "POST", "/v1/algorithms/nope/jobs", e.token, `{"input":{}}`, nil, 404, "not_found", "nope"},
		{"unknown job", "GET", "/v1/jobs/" + job.NewID(), e.token, "", nil, 404, "not_found", ""},
		{"malformed job id", "GET", "/v1/jobs/xyz", e.token, "", nil, 404, "not_found", ""},
		{"unknown route", "GET", "/v1/nothing", e.token, "", nil, 404, "not_found", ""},
		{"wrong method", "DELETE", "/v1/jobs/" + j.ID, e.token, "", nil, 405, "method_not_allowed", "DELETE"},
		{"malformed JSON", "POST", submitPath, e.token, `{"input":`, nil, 400, "bad_request", ""},
		{"unknown field", "POST", submitPath, e.token, `{"input":{"message":"x"},"priority":"high"}`, nil, 400, "bad_request", "priority"},
		{"no input", "POST", submitPath, e.token, `{"version":"1.0.0"}`, nil, 400, "bad_request", "input"},
		{"bad policy", "POST", submitPath, e.token, `{"input":{"message":"x"},"policy":{"ttl":"soon"}}`, nil, 400, "bad_request", "policy.ttl"},
		{"bad webhook", "POST", submitPath, e.token, `{"input":{"message":"x"},"webhook":"file:///etc/passwd"}`, nil, 400, "bad_request", "webhook"},
		{"webhook to cloud metadata", "POST", submitPath, e.token, `{"input":{"message":"x"},"webhook":"http://169.254.169.254/latest/meta-data/"}`, nil, 422, "invalid_webhook", "webhook \"http://169.254.169.254/latest/meta-data/\""},
		{"webhook to loopback", "POST", submitPath, e.token, `{"input":{"message":"x"},"webhook":"http://localhost:8080/function/auth"}`, nil, 422, "invalid_webhook", "loopback address"},
		{"bad filter", "GET", "/v1/jobs?state=done", e.token, "", nil, 400, "bad_request", "state"},
		{"bad since", "GET", "/v1/jobs?since=yesterday", e.token, "", nil, 400, "bad_request", "RFC 3339"},
		{"bad cursor", "GET", "/v1/jobs?cursor=!!", e.token, "", nil, 400, "bad_request", "cursor"},
		{"unknown filter", "GET", "/v1/jobs?colour=red", e.token, "", nil, 400, "bad_request", "colour"},
		{"retry queued", "POST", "/v1/jobs/" + j.ID + "/retry", e.token, "", nil, 409, "conflict", "failed or expired"},
		{"too large", "POST", submitPath, e.token, `{"input":{"message":"` + strings.Repeat("x", 2<<20) + `"}}`, nil, 413, "too_large", ""},
		{"schema violation", "POST", submitPath, e.token, `{"input":{"message":42}}`, nil, 422, "invalid_input", "/message"},
	}
	for _, c := range cases {
		r := e.do(t, c.method, c.path, c.token, c.body, c.header...)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
			continue
		}
		code, msg := r.errorCode(t)
		if code != c.code || !strings.Contains(msg, c.inMessage) {
			t.Errorf("%s: %s %q, want %s with %q", c.name, code, msg, c.code, c.inMessage)
		}
	}
	// 415: a body that is not JSON.
	req, err := http.NewRequestWithContext(e.ctx, "POST", e.url+submitPath, strings.NewReader("message=hi"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form body: %d, want 415", resp.StatusCode)
	}
	// Only the first submit left a job.
	page, err := e.jobs.List(e.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("refused requests left jobs: %d %v", len(page.Jobs), err)
	}
	// Health needs no token.
	if r := e.do(t, "GET", "/_/health", "", ""); r.status != http.StatusOK {
		t.Fatalf("health %d %s", r.status, r.body)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RateLimit.Rate, cfg.RateLimit.Burst = 0.5, 3
	e := setup(t, cfg)
	tenant := "rl-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tok := e.is.Token(t, tenant, auth.ScopeJobsRead)
	for range 3 {
		e.want(t, e.do(t, "GET", "/v1/jobs", tok, ""), http.StatusOK)
	}
	r := e.want(t, e.do(t, "GET", "/v1/jobs", tok, ""), http.StatusTooManyRequests)
	if code, _ := r.errorCode(t); code != "rate_limited" {
		t.Fatalf("code %s", code)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want 1-2 s at 0.5/s", r.header.Get("Retry-After"))
	}
	// Another tenant has its own bucket.
	e.want(t, e.do(t, "GET", "/v1/jobs", e.is.Token(t, tenant+"-b", auth.ScopeJobsRead), ""), http.StatusOK)
}

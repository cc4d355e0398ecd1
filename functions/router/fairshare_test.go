package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/registry"
)

// TestFairShareAPI: with a live worker of one slot the pool's room is 3
// (slot + buffer); a job beyond it waits for its fair share, and GET
// /v1/jobs/{id} gives its queue position (behind the ready jobs) and, once a
// run of the pool was measured, its expected start. Deleting the tenant ends
// its queued jobs canceled with the reason, asks its running job to stop, and
// leaves the waiting job nowhere (neither queue nor fair share); it revokes
// the tenant's API clients and no other tenant's, and voids the tokens the
// tenant holds (401) but not those issued to it afterwards.
func TestFairShareAPI(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.QuotaCacheTTL = 300 * time.Millisecond // a deletion waits it out
	e := setup(t, cfg)
	e.register(t)
	if err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "n1", Pool: e.pool, Slots: 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	fair := fairq.New(e.rdb, e.queue, fairq.Config{})
	t.Cleanup(func() { _ = fair.Purge(context.Background(), e.pool) })
	var ids []string
	for i := range 5 {
		ids = append(ids, e.submit(t, fmt.Sprintf(`{"input":{"message":"m%d"}}`, i)).ID)
	}
	for i, id := range ids {
		held, err := fair.Holds(e.ctx, e.pool, id)
		if err != nil || held != (i >= 3) {
			t.Fatalf("job %d held %v (%v), want %v", i, held, err, i >= 3)
		}
	}
	var got struct {
		QueuePosition *int64     `json:"queue_position"`
		ETAStart      *time.Time `json:"eta_start"`
	}
	e.want(t, e.do(t, "GET", "/v1/jobs/"+ids[4], e.token, ""), http.StatusOK).decode(t, &got)
	if got.QueuePosition == nil || *got.QueuePosition != 5 || got.ETAStart != nil {
		t.Fatalf("position %v eta %v, want 5 (3 ready, 1 waiting ahead) and no estimate before a measured run", got.QueuePosition, got.ETAStart)
	}

	// The first job runs for 2 slot-seconds: the pool's mean run is 2 s, and
	// its end moves the next job in.
	lc := lifecycle.New(e.jobs, e.events, slog.New(slog.DiscardHandler), lifecycle.Backoff{}).OnEnd(fair.Ended)
	j, err := e.jobs.GetByID(e.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	out, err := lc.Start(e.ctx, j, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Succeed(e.ctx, out.Job, lifecycle.Result{Output: json.RawMessage(`{}`), Usage: job.Usage{CPUSeconds: 2}}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	e.want(t, e.do(t, "GET", "/v1/jobs/"+ids[4], e.token, ""), http.StatusOK).decode(t, &got)
	if got.QueuePosition == nil || got.ETAStart == nil {
		t.Fatalf("position %v eta %v", got.QueuePosition, got.ETAStart)
	}
	// Position n with one slot, free: the first job ahead takes it, the job
	// waits for n-1 runs of 2 s.
	want := before.Add(time.Duration(*got.QueuePosition-1) * 2 * time.Second)
	if d := got.ETAStart.Sub(want); d < -time.Second || d > time.Second {
		t.Fatalf("eta %v, want about %v (position %d)", got.ETAStart, want, *got.QueuePosition)
	}

	// ids[1] runs; the tenant is deleted.
	if j, err = e.jobs.GetByID(e.ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Start(e.ctx, j, "n1"); err != nil {
		t.Fatal(err)
	}
	// acme has two API clients (one revoked already); another tenant one.
	apiClients, err := clients.NewStore(e.ctx, e.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var acme []string
	for _, spec := range []clients.Spec{{Name: "a1", Tenant: "acme"}, {Name: "a2", Tenant: "acme"}, {Name: "b1", Tenant: "globex"}} {
		spec.Scopes = []string{auth.ScopeJobsRead}
		c, _, err := apiClients.Create(e.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		acme = append(acme, c.ID)
	}
	if err := apiClients.Revoke(e.ctx, acme[1]); err != nil {
		t.Fatal(err)
	}
	tenant := e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	e.want(t, e.do(t, "DELETE", "/v1/admin/tenants/acme", tenant, ""), http.StatusForbidden)
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	var del struct {
		Tenant          string
		ClientsRevoked  int `json:"clients_revoked"`
		Canceled        int
		CancelRequested int `json:"cancel_requested"`
	}
	e.want(t, e.do(t, "DELETE", "/v1/admin/tenants/acme", op, ""), http.StatusOK).decode(t, &del)
	if del.Tenant != "acme" || del.ClientsRevoked != 1 || del.Canceled != 3 || del.CancelRequested != 1 {
		t.Fatalf("deleted %+v, want 1 client revoked, 3 canceled, 1 asked to stop", del)
	}
	for i, id := range acme {
		c, err := apiClients.Get(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; c.Revoked() != want {
			t.Fatalf("client %s of %s: revoked %v, want %v", c.Name, c.Tenant, c.Revoked(), want)
		}
	}
	for _, id := range ids[2:] {
		j, err := e.jobs.GetByID(e.ctx, id)
		if err != nil || j.State != job.Canceled || j.Error == nil || !strings.Contains(j.Error.Message, "tenant acme was deleted") {
			t.Fatalf("job %s after the deletion: %+v %v", id, j, err)
		}
		if held, _ := fair.Holds(e.ctx, e.pool, id); held {
			t.Fatalf("job %s still waits for its fair share", id)
		}
	}
	if st, _ := fair.State(e.ctx, e.pool); st.Waiting != 0 {
		t.Fatalf("fair share still has %d waiting", st.Waiting)
	}
	// The tenant's tokens issued until then are refused, for reads and
	// submits alike; another tenant's are not.
	for _, req := range [][2]string{{"GET", "/v1/jobs"}, {"GET", "/v1/jobs/" + ids[0]}, {"POST", "/v1/algorithms/echo/jobs"}} {
		r := e.want(t, e.do(t, req[0], req[1], e.token, `{"input":{"message":"late"}}`), http.StatusUnauthorized)
		if !strings.Contains(string(r.body), "tenant acme was deleted") || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("%s %s with a token of before the deletion: %s %v", req[0], req[1], r.body, r.header)
		}
	}
	e.want(t, e.do(t, "GET", "/v1/jobs", e.is.Token(t, "globex", auth.ScopeJobsRead), ""), http.StatusOK)
	// Setting its quotas again keeps the old tokens out.
	e.want(t, e.do(t, "PUT", "/v1/admin/tenants/acme/quotas", op, `{"weight":2,"pools":[]}`), http.StatusOK)
	e.want(t, e.do(t, "GET", "/v1/jobs", e.token, ""), http.StatusUnauthorized)
	// The operators' tenant cannot be deleted.
	e.want(t, e.do(t, "DELETE", "/v1/admin/tenants/"+auth.OperatorTenant, op, ""), http.StatusBadRequest)

	// Repeating it is harmless.
	e.want(t, e.do(t, "DELETE", "/v1/admin/tenants/acme", op, ""), http.StatusOK).decode(t, &del)
	if del.Canceled != 0 || del.ClientsRevoked != 0 {
		t.Fatalf("second deletion %+v", del)
	}
	// A token issued after the deletion (iat counts whole seconds) works.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	var list struct{ Jobs []json.RawMessage }
	e.want(t, e.do(t, "GET", "/v1/jobs", e.is.Token(t, "acme", auth.ScopeJobsRead), ""), http.StatusOK).decode(t, &list)
	if len(list.Jobs) != 5 {
		t.Fatalf("the recreated tenant lists %d jobs, want its 5", len(list.Jobs))
	}
}

// A deletion reaches a router replica that missed its announcement (its
// subscription down): holding the tenant in its cache, that replica takes
// a submit with a token of before the deletion until the cache's TTL has
// passed; the deletion waits that out and cancels what slipped in, and once
// it has answered no replica takes the token.
func TestTenantDeletionReachesAReplicaThatMissedIt(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.QuotaCacheTTL = 2 * time.Second
	e := setup(t, cfg)
	e.register(t)
	a := e.url
	e.serveReplica(t, e.db, e.rdb, cfg, false)
	b := e.url
	old := e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	e.want(t, e.do(t, "GET", "/v1/jobs", old, ""), http.StatusOK) // b holds acme: not deleted
	e.url = a

	deleted := e.deleteTenant(t, a, "acme")
	// a refuses the token as soon as the deletion is recorded.
	for deadline := time.Now().Add(cfg.QuotaCacheTTL / 2); ; time.Sleep(5 * time.Millisecond) {
		if e.do(t, "GET", "/v1/jobs", old, "").status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleting replica still takes the tenant's old token")
		}
	}
	// b, within its cache's TTL, still takes it: a job slips in.
	e.url = b
	var slipped jobReply
	e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", old, `{"input":{"message":"late"}}`), http.StatusAccepted).decode(t, &slipped)

	got := <-deleted
	var del struct {
		Canceled int `json:"canceled"`
	}
	if err := json.Unmarshal(got.body, &del); got.status != http.StatusOK || err != nil || del.Canceled != 1 {
		t.Fatalf("deletion: %d %s, want 200 with the slipped-in job canceled", got.status, got.body)
	}
	if got.took < cfg.QuotaCacheTTL {
		t.Fatalf("the deletion answered after %v, before the caches' TTL of %v had passed", got.took, cfg.QuotaCacheTTL)
	}
	j, err := e.jobs.GetByID(e.ctx, slipped.ID)
	if err != nil || j.State != job.Canceled || j.Error == nil || !strings.Contains(j.Error.Message, "tenant acme was deleted") {
		t.Fatalf("the job that slipped in: %+v %v", j, err)
	}
	for _, u := range []string{a, b} {
		e.url = u
		e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", old, `{"input":{"message":"later"}}`), http.StatusUnauthorized)
	}
}

// A deletion is announced to every router replica: one that holds the
// tenant in its cache refuses the tenant's old token at once, long before
// its cache's TTL would have passed.
func TestTenantDeletionIsAnnouncedToEveryReplica(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.QuotaCacheTTL = 3 * time.Second
	e := setup(t, cfg)
	a := e.url
	e.serve(t, e.db, e.rdb, cfg) // replica b: e.url from here on
	old := e.is.Token(t, "acme", auth.ScopeJobsRead)
	e.want(t, e.do(t, "GET", "/v1/jobs", old, ""), http.StatusOK) // b holds acme: not deleted
	held := time.Now()

	deleted := e.deleteTenant(t, a, "acme")
	for {
		if e.do(t, "GET", "/v1/jobs", old, "").status == http.StatusUnauthorized {
			break
		}
		if time.Since(held) > cfg.QuotaCacheTTL*2/3 {
			t.Fatalf("replica b still takes the deleted tenant's token %v after it cached the tenant", time.Since(held))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := <-deleted; got.status != http.StatusOK {
		t.Fatalf("deletion: %d %s", got.status, got.body)
	}
}

// deletion is the answer to a DELETE of a tenant and how long it took.
type deletion struct {
	status int
	body   []byte
	took   time.Duration
}

// deleteTenant deletes tenant through the router at url with an operator
// token, in the background (a deletion waits out the caches' TTL); the
// answer comes on the channel (status 0 and the error as body when the
// request failed).
func (e *env) deleteTenant(t *testing.T, url, tenant string) <-chan deletion {
	t.Helper()
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	out := make(chan deletion, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequestWithContext(e.ctx, "DELETE", url+"/v1/admin/tenants/"+tenant, nil)
		req.Header.Set("Authorization", "Bearer "+op)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- deletion{body: []byte(err.Error())}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		out <- deletion{resp.StatusCode, body, time.Since(start)}
	}()
	return out
}

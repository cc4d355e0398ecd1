package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testlog"
)

// TestDeliveryRefusesForbiddenAddresses: a URL that got past submit (recorded
// before the guard, or a name that resolves elsewhere by now) is checked again
// when the delivery dials: nothing reaches the receiver, and the attempt is
// logged as failed with the reason.
func TestDeliveryRefusesForbiddenAddresses(t *testing.T) {
	b := setup(t)
	rc := &receiver{answer: func(int) int { return http.StatusOK }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// By address, and by a name resolved at delivery time.
	byIP := b.succeed(t, "acme", srv.URL+"/hook")
	byName := b.succeed(t, "acme", "http://localhost:"+u.Port()+"/hook")
	d := NewDeliverer(b.store, Config{Backoff: time.Hour, Timeout: 2 * time.Second, Log: testlog.New(t)})
	if _, err := d.Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	res, err := d.Deliver(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 0 || res.Retrying != 2 {
		t.Errorf("deliver = %+v; want 2 attempts refused (retrying), none delivered", res)
	}
	if got := rc.got(); len(got) != 0 {
		t.Errorf("the loopback receiver got %d requests; want none", len(got))
	}
	for _, j := range []string{byIP.ID, byName.ID} {
		ds, err := b.store.Deliveries(b.ctx, "acme", j)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || len(ds[0].Log) != 1 || !strings.Contains(ds[0].Log[0].Error, "loopback address") {
			t.Errorf("deliveries of %s = %+v; want one attempt refused as a loopback address", j, ds)
		}
	}
	// The operator's allow-list lets the same deliveries through.
	allowed := NewDeliverer(b.store, Config{Timeout: 2 * time.Second, Log: testlog.New(t), Guard: loopbackAllowed,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if res, err := allowed.Deliver(b.ctx); err != nil || res.Delivered != 2 {
		t.Errorf("deliver with loopback allowed = %+v, %v; want 2 delivered", res, err)
	}
	if got := rc.got(); len(got) != 2 {
		t.Errorf("the receiver got %d requests; want 2", len(got))
	}
}

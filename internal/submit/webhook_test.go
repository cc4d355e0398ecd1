package submit

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/jobstore"
)

// TestSubmitRefusesWebhooksToNonPublicAddresses: a tenant cannot make the
// orchestrator POST to loopback, private or link-local addresses (cloud
// metadata), by address or by a name that resolves to one, unless the operator
// allows the network.
func TestSubmitRefusesWebhooksToNonPublicAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ok := json.RawMessage(`{"message":"hi"}`)
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://127.0.0.1:8080/function/auth/admin/clients",
		"http://[::1]/x",
		"https://10.0.0.5/hook",
		"http://192.168.1.1/hook",
		"http://[fd00:ec2::254]/",
		"http://localhost:6379/",
	} {
		_, _, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Input: ok, Webhook: u})
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, egress.ErrForbiddenAddress) || !strings.Contains(err.Error(), "webhook") {
			t.Errorf("webhook %s: got %v; want ErrInvalid and egress.ErrForbiddenAddress naming the webhook", u, err)
		}
	}
	page, err := b.jobs.List(b.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 0 {
		t.Fatalf("refused submits left jobs: %v %v", page.Jobs, err)
	}

	// The operator allows loopback: the same URL is accepted.
	cfg := b.svc.cfg
	cfg.Webhooks = egress.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	svc := New(cfg)
	j, _, err := svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Input: ok, Webhook: "http://127.0.0.1:9000/hook"})
	if err != nil || j.Webhook == nil || j.Webhook.URL != "http://127.0.0.1:9000/hook" {
		t.Fatalf("with 127.0.0.0/8 allowed: %+v, %v", j, err)
	}
	if _, _, err := svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Input: ok, Webhook: "http://169.254.169.254/"}); !errors.Is(err, egress.ErrForbiddenAddress) {
		t.Errorf("metadata address with only loopback allowed: %v", err)
	}
}

package orchestrator

import (
	"net/http"
	"testing"

	"github.com/aigw/aigw/internal/auth"
)

// TestOperatorTokenReadsWebhookSecrets: the tenants' webhook secrets are the
// operator's: the admin token, or an operator token (what the console's admin
// holds), reads and rotates them; a tenant's token does not, nor a token that
// merely names the operator tenant without the operator scope.
func TestOperatorTokenReadsWebhookSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.issuer.Token(t, auth.OperatorTenant, auth.ScopeAlgorithmsAdmin, auth.ScopeJobsRead)
	var sec struct{ Tenant, Secret string }
	if code := b.call(t, http.MethodGet, "/admin/tenants/acme/webhook-secret", op, "", &sec); code != http.StatusOK || sec.Tenant != "acme" || sec.Secret == "" {
		t.Fatalf("get with an operator token = %d %+v", code, sec)
	}
	var rotated struct{ Secret string }
	if code := b.call(t, http.MethodPost, "/admin/tenants/acme/webhook-secret", op, "", &rotated); code != http.StatusOK || rotated.Secret == sec.Secret {
		t.Fatalf("rotate with an operator token = %d %+v", code, rotated)
	}
	for name, tok := range map[string]string{
		"tenant token":          b.issuer.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite),
		"operator tenant alone": b.issuer.Token(t, auth.OperatorTenant, auth.ScopeJobsRead),
		"garbage":               "a.b.c",
	} {
		if code := b.call(t, http.MethodGet, "/admin/tenants/acme/webhook-secret", tok, "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	// The tick stays the admin token's (and the cron's).
	if code := b.call(t, http.MethodPost, "/tick", op, "", nil); code != http.StatusUnauthorized {
		t.Errorf("tick with an operator token: %d, want 401", code)
	}
}

package router

import (
	"net/http"
	"strings"
	"testing"
)

// TestIdempotencyKeyReusedIs422: the same Idempotency-Key with another body
// is 422 naming the key; with the same body it is the first job.
func TestIdempotencyKeyReusedIs422(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	first := e.submit(t, `{"input":{"message":"hi"}}`, "Idempotency-Key", "order-9")
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", e.token, `{ "input" : { "message" : "hi" } }`, "Idempotency-Key", "order-9"), http.StatusAccepted)
	var again jobReply
	r.decode(t, &again)
	if again.ID != first.ID {
		t.Fatalf("same body: job %s, want %s", again.ID, first.ID)
	}
	r = e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", e.token, `{"input":{"message":"other"}}`, "Idempotency-Key", "order-9"), http.StatusUnprocessableEntity)
	if code, msg := r.errorCode(t); code != "idempotency_key_reused" || !strings.Contains(msg, `"order-9"`) {
		t.Fatalf("reused key: %s %q", code, msg)
	}
}

package submit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/jobstore"
)

// TestIdempotencyKeyReusedForAnotherRequest: a key names one request. The
// same request again (keys in another order, other white space, a newer
// version registered meanwhile) returns the first job; the key with another
// body, algorithm, version or policy is ErrIdempotencyKeyReused naming the
// key, and records nothing.
func TestIdempotencyKeyReusedForAnotherRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	retries := 1
	b.put(t, algorithm.Definition{Name: "echo-two", Version: "1.0.0", Pool: b.pool,
		Runtime:   algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}},
		TimeoutMS: 30000, MaxRetries: &retries, InputSchema: json.RawMessage(echoSchema)})
	const key = "pay-7"
	first := b.submit(t, Request{IdempotencyKey: key, Input: json.RawMessage(`{"message":"hi","n":{"a":3}}`)})

	b.put(t, algorithm.Definition{Name: b.algo, Version: "2.0.0", Pool: b.pool,
		Runtime:   algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}},
		TimeoutMS: 30000, MaxRetries: &retries, InputSchema: json.RawMessage(echoSchema)})
	again, created, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, IdempotencyKey: key,
		Input: json.RawMessage("{ \"n\" : { \"a\" : 3 },\n \"message\" : \"hi\" }")})
	if err != nil || created || again.ID != first.ID || again.Version != "1.0.0" {
		t.Fatalf("same request again: %+v created=%v err=%v; want job %s", again, created, err, first.ID)
	}

	prio := Policy{Priority: "high"}
	for name, req := range map[string]Request{
		"another body":      {Algorithm: b.algo, Input: json.RawMessage(`{"message":"bye","n":{"a":3}}`)},
		"a number changed":  {Algorithm: b.algo, Input: json.RawMessage(`{"message":"hi","n":{"a":4}}`)},
		"another algorithm": {Algorithm: "echo-two", Input: json.RawMessage(`{"message":"hi","n":{"a":3}}`)},
		"another version":   {Algorithm: b.algo, Version: "2.0.0", Input: json.RawMessage(`{"message":"hi","n":{"a":3}}`)},
		"another policy":    {Algorithm: b.algo, Policy: prio, Input: json.RawMessage(`{"message":"hi","n":{"a":3}}`)},
	} {
		req.Tenant, req.IdempotencyKey = "acme", key
		j, created, err := b.svc.Submit(b.ctx, req)
		if !errors.Is(err, ErrIdempotencyKeyReused) || j != nil || created {
			t.Errorf("%s: %v, %v, %v; want ErrIdempotencyKeyReused", name, j, created, err)
			continue
		}
		if !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("%s: error %q does not name the key", name, err)
		}
	}
	page, err := b.jobs.List(b.ctx, jobstore.Filter{Tenant: "acme", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 1 || page.Jobs[0].ID != first.ID {
		t.Fatalf("jobs %+v, want only %s", page.Jobs, first.ID)
	}
	// Another tenant's key is its own, whatever it asks for.
	b.submit(t, Request{Tenant: "globex", IdempotencyKey: key, Input: json.RawMessage(`{"message":"other"}`)})
}

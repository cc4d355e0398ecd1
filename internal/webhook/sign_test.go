package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// The example of the Standard Webhooks reference libraries.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesStandardWebhooksExample(t *testing.T) {
	got, err := Sign(specSecret, specID, time.Unix(specTS, 0), []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSig {
		t.Fatalf("Sign = %s, want %s", got, specSig)
	}
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, "v1,bm9wZQ== "+specSig)
	if err := verifyAt(time.Unix(specTS+10, 0), specSecret, h, []byte(specBody), time.Minute); err != nil {
		t.Fatalf("verify the spec example: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	secret := NewSecret()
	now := time.Now()
	body := []byte(`{"type":"job.succeeded"}`)
	signed := func() http.Header {
		h := http.Header{}
		if err := SetHeaders(h, "msg_1", now, body, secret); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := Verify(secret, signed(), body, 0); err != nil {
		t.Fatalf("a fresh signature: %v", err)
	}
	cases := map[string]struct {
		secret string
		h      func() http.Header
		body   string
		want   error
	}{
		"tampered body": {secret, signed, `{"type":"job.failed"}`, ErrNoMatchingSig},
		"other secret":  {NewSecret(), signed, string(body), ErrNoMatchingSig},
		"other id": {secret, func() http.Header {
			h := signed()
			h.Set(HeaderID, "msg_2")
			return h
		}, string(body), ErrNoMatchingSig},
		"old timestamp": {secret, func() http.Header {
			h := http.Header{}
			if err := SetHeaders(h, "msg_1", now.Add(-10*time.Minute), body, secret); err != nil {
				t.Fatal(err)
			}
			return h
		}, string(body), ErrBadTimestamp},
		"future timestamp": {secret, func() http.Header {
			h := http.Header{}
			if err := SetHeaders(h, "msg_1", now.Add(10*time.Minute), body, secret); err != nil {
				t.Fatal(err)
			}
			return h
		}, string(body), ErrBadTimestamp},
		"missing signature": {secret, func() http.Header {
			h := signed()
			h.Del(HeaderSignature)
			return h
		}, string(body), ErrMissingHeaders},
		"v2 scheme only": {secret, func() http.Header {
			h := signed()
			h.Set(HeaderSignature, "v2"+h.Get(HeaderSignature)[2:])
			return h
		}, string(body), ErrNoMatchingSig},
		"secret without prefix": {secret[len(SecretPrefix):], signed, string(body), ErrInvalidSecret},
	}
	for name, c := range cases {
		if err := Verify(c.secret, c.h(), []byte(c.body), 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
}

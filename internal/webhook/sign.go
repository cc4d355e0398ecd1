// Package webhook delivers job state changes to tenants' webhook URLs, signed per
// Standard Webhooks (https://www.standardwebhooks.com).
//
// The flow is durable end to end: a job transition appends a notification to the
// job's outbox in MongoDB (package jobstore); Drain turns each notification into a
// delivery record with a deterministic webhook-id and only then acknowledges it, so
// a crash in between re-drains into a duplicate-key no-op; Deliver sends the due
// deliveries, claiming each by compare-and-set so that two orchestrator replicas
// never send the same attempt, and retries with exponential backoff and jitter for
// up to MaxAge, always with the same webhook-id.
//
// # Receiving
//
// Every request carries three headers:
//
//	webhook-id:        msg_<job id>_<state>_<unix ms>, the same on every retry (dedupe on it)
//	webhook-timestamp: Unix seconds of this attempt
//	webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
//
// The HMAC key is the base64 part of the tenant's secret after "whsec_". During a
// day after a rotation the header carries two space-separated signatures (new and
// previous secret). Receivers call Verify (or any Standard Webhooks library) with the
// raw body before parsing it, reject old timestamps, answer 2xx once the event is
// stored, and 410 Gone to stop all further deliveries of that message.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every webhook secret.
const SecretPrefix = "whsec_"

// Errors of Verify, each matched with errors.Is.
var (
	ErrMissingHeaders   = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp     = errors.New("webhook: timestamp is malformed or outside the tolerance")
	ErrNoMatchingSig    = errors.New("webhook: no signature matches")
	ErrInvalidSecret    = errors.New("webhook: secret must be whsec_ followed by base64")
	errEmptySecretBytes = errors.New("webhook: secret is empty")
)

// secretKey returns the HMAC key of a whsec_ secret.
func secretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSecret, err)
	}
	if len(key) == 0 {
		return nil, errEmptySecretBytes
	}
	return key, nil
}

// Sign returns the "v1,<base64>" signature of body sent as message id at ts.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// SetHeaders sets the three Standard Webhooks headers on h, signing body with each
// of secrets (the current one first; the previous one during a rotation).
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, secrets ...string) error {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return err
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return errEmptySecretBytes
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return nil
}

// Verify checks a received webhook: the headers must be present, the timestamp
// within tolerance of now (tolerance <= 0 means 5 minutes), and one of the
// space-separated v1 signatures must be the HMAC of "id.timestamp.body" under
// secret. body must be the raw request body, as received.
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(time.Now(), secret, h, body, tolerance)
}

func verifyAt(now time.Time, secret string, h http.Header, body []byte, tolerance time.Duration) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBadTimestamp, tsText)
	}
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %s away from now", ErrBadTimestamp, tsText, d.Round(time.Second))
	}
	want := mac(key, id, unix, body)
	for _, sig := range strings.Fields(sigs) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSig
}

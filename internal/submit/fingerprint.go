package submit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// fingerprint digests what a submit asks for: the algorithm, the version as
// asked (not as resolved, so registering a newer version does not turn a
// repeat into a different request), and the body in canonical form (object
// keys sorted, no insignificant white space, numbers as written), so two
// submits differ in fingerprint exactly when they ask for different things.
func fingerprint(req Request) (string, error) {
	input, err := canonicalJSON(req.Input)
	if err != nil {
		return "", fmt.Errorf("%w: input: %v", ErrInvalid, err)
	}
	events := req.WebhookEvents
	if events == nil {
		events = []string{}
	}
	b, err := json.Marshal(struct {
		Algorithm     string          `json:"algorithm"`
		Version       string          `json:"version"`
		Input         json.RawMessage `json:"input"`
		Webhook       string          `json:"webhook"`
		WebhookEvents []string        `json:"webhook_events"`
		Policy        Policy          `json:"policy"`
	}{req.Algorithm, req.Version, input, req.Webhook, events, req.Policy})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-encodes a JSON value with sorted object keys and no
// insignificant white space; numbers keep their text. Empty is null.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null"), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// v2Request is an Open Inference Protocol v2 request carrying the input JSON
// as one BYTES tensor.
type v2Request struct {
	Inputs []v2Tensor `json:"inputs"`
}

type v2Tensor struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	Data     []any  `json:"data"`
}

var httpClient = &http.Client{Transport: &http.Transport{
	Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
}}

func (r *Runner) runHTTP(ctx context.Context, s Spec, h Hooks) (res Result) {
	fail := func(code string, retry bool, format string, args ...any) Result {
		res.Err = &Failure{Code: code, Message: fmt.Sprintf(format, args...), Retryable: retry}
		return res
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = s.Def.Timeout()
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()
	body := []byte(s.Input)
	if s.Def.Runtime.Protocol == "v2" {
		b, err := json.Marshal(v2Request{Inputs: []v2Tensor{{Name: "input", Shape: []int{1}, Datatype: "BYTES", Data: []any{string(s.Input)}}}})
		if err != nil {
			return fail(CodeRuntime, false, "encode v2 request: %v", err)
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Def.Runtime.URL, bytes.NewReader(body))
	if err != nil {
		return fail(CodeRuntime, false, "request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Aigw-Job-Id", s.JobID)
	if h.Started != nil {
		h.Started(0)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		switch {
		case context.Cause(ctx) == errTimeout:
			return fail(CodeTimeout, true, "no answer from %s within the execution timeout of %s", s.Def.Runtime.URL, timeout)
		case ctx.Err() != nil:
			return fail(CodeStopped, false, "stopped: %v", context.Cause(ctx))
		}
		return fail(CodeRuntime, true, "POST %s: %v", s.Def.Runtime.URL, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, r.Limits.Output+1))
	if err != nil {
		if context.Cause(ctx) == errTimeout {
			return fail(CodeTimeout, true, "response of %s not read within the execution timeout of %s", s.Def.Runtime.URL, timeout)
		}
		return fail(CodeRuntime, true, "read response of %s: %v", s.Def.Runtime.URL, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail(CodeHTTP, resp.StatusCode >= 500, "%s answered %s: %s", s.Def.Runtime.URL, resp.Status, errorMessage(out))
	}
	if int64(len(out)) > r.Limits.Output {
		return fail(CodeBadOut, false, "response is larger than the limit of %d bytes", r.Limits.Output)
	}
	out = bytes.TrimSpace(out)
	if !json.Valid(out) {
		return fail(CodeBadOut, false, "response is not a JSON document: %q", truncate(string(out), 200))
	}
	res.Output = json.RawMessage(out)
	return res
}

// errorMessage extracts a message from an error response: {"error":{"message"}},
// {"error":"…"} (the v2 protocol's shape), {"message":"…"} or the text itself.
func errorMessage(body []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		var s string
		var obj struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(e.Error, &s) == nil && s != "":
			return truncate(s, 500)
		case json.Unmarshal(e.Error, &obj) == nil && obj.Message != "":
			return truncate(obj.Message, 500)
		case e.Message != "":
			return truncate(e.Message, 500)
		}
	}
	return truncate(strings.TrimSpace(string(body)), 500)
}

package executorapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is an answer of the API other than 2xx.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("executor api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Unavailable marks answers worth retrying (5xx, 429) as an outage of the
// API (web.IsUnavailable), not a fault of the request.
func (e *Error) Unavailable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// StatusOf is err's HTTP status when it is an *Error, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Client calls the executor API at a base URL (…/function/executors) with a
// bearer token: an executor's, or the admin token for Create and Revoke.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the API at base; hc nil takes a client
// without an overall timeout (claims are long polls; each call's context
// bounds it).
func NewClient(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}
}

// Create makes a credential (admin token).
func (c *Client) Create(ctx context.Context, pool, name string) (Created, error) {
	var out Created
	err := c.call(ctx, http.MethodPost, "/admin/executors", CreateRequest{Pool: pool, Name: name}, &out)
	return out, err
}

// Revoke revokes credential id (admin token).
func (c *Client) Revoke(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/admin/executors/"+url.PathEscape(id), nil, nil)
}

// Register says who the executor is.
func (c *Client) Register(ctx context.Context, r Register) (Registered, error) {
	var out Registered
	err := c.call(ctx, http.MethodPost, "/v1/executor/register", r, &out)
	return out, err
}

// Claim long-polls for jobs.
func (c *Client) Claim(ctx context.Context, r ClaimRequest) ([]Job, error) {
	var out Claimed
	err := c.call(ctx, http.MethodPost, "/v1/executor/claim", r, &out)
	return out.Jobs, err
}

// Heartbeat keeps the leases of the jobs in h.
func (c *Client) Heartbeat(ctx context.Context, h Heartbeat) (HeartbeatAnswer, error) {
	var out HeartbeatAnswer
	err := c.call(ctx, http.MethodPost, "/v1/executor/heartbeat", h, &out)
	return out, err
}

// Event sends progress or log lines of held job id.
func (c *Client) Event(ctx context.Context, id string, e Event) error {
	return c.call(ctx, http.MethodPost, "/v1/executor/jobs/"+url.PathEscape(id)+"/events", e, nil)
}

// Finish ends held job id's attempt.
func (c *Client) Finish(ctx context.Context, id string, f Finish) (Finished, error) {
	var out Finished
	err := c.call(ctx, http.MethodPost, "/v1/executor/jobs/"+url.PathEscape(id)+"/finish", f, &out)
	return out, err
}

// Artifact uploads one file of held job id's attempt (size bytes from r).
func (c *Client) Artifact(ctx context.Context, id string, attempt int, name string, r io.Reader, size int64) error {
	p := "/v1/executor/jobs/" + url.PathEscape(id) + "/artifacts/" + url.PathEscape(name) + "?attempt=" + strconv.Itoa(attempt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+p, r)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	return c.do(req, nil)
}

// File opens upload, a file the input of held job id's attempt refers to
// ({"$file": "<upload id>"}), and returns its body and size (-1: not said).
func (c *Client) File(ctx context.Context, id string, attempt int, upload string) (io.ReadCloser, int64, error) {
	p := "/v1/executor/jobs/" + url.PathEscape(id) + "/files/" + url.PathEscape(upload) + "?attempt=" + strconv.Itoa(attempt)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+p, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, 0, apiError(resp.StatusCode, raw)
	}
	return resp.Body, resp.ContentLength, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}

func (c *Client) do(req *http.Request, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("executor api: %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

// apiError is the *Error of an answer with status and body raw.
func apiError(status int, raw []byte) *Error {
	e := &Error{Status: status, Message: strings.TrimSpace(string(raw))}
	var api struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &api) == nil && api.Error.Code != "" {
		e.Code, e.Message = api.Error.Code, api.Error.Message
	}
	return e
}

// Ms is d in whole milliseconds.
func Ms(d time.Duration) int64 { return d.Milliseconds() }

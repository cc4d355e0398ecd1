package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// APIError is an error answer of the API: its status and the API's message.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// UnreachableError: the gateway did not answer at all.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the gateway at %s: %v (is aigw running there? check AIGW_URL or aigw login --url)", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client talks to the API with the credentials of a profile: a client's id
// and secret (tokens from the auth function's token endpoint) for the
// tenant's routes, the admin token (an operator token from the auth
// function) for the operator's.
type Client struct {
	prof Profile
	hc   *http.Client

	mu     sync.Mutex
	tokens map[bool]token // by operator
}

type token struct {
	value   string
	expires time.Time
}

// NewClient returns a client for prof.
func NewClient(prof Profile, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 0}
	}
	return &Client{prof: prof, hc: hc, tokens: map[bool]token{}}
}

// token returns a bearer token: an operator token when operator is set (or
// when the profile has no client credentials), else a client token.
func (c *Client) token(ctx context.Context, operator bool) (string, error) {
	if c.prof.ClientID == "" {
		operator = true
	}
	c.mu.Lock()
	t, ok := c.tokens[operator]
	c.mu.Unlock()
	if ok && time.Until(t.expires) > 30*time.Second {
		return t.value, nil
	}
	var req *http.Request
	var err error
	switch {
	case operator && c.prof.AdminToken == "":
		if c.prof.ClientID == "" {
			return "", usageErrorf("no credentials: run aigw login, or set AIGW_URL, AIGW_AUTH_URL, AIGW_CLIENT_ID and AIGW_CLIENT_SECRET (.aigw/demo.env)")
		}
		return "", usageErrorf("this command needs an operator token: run aigw login --admin-token-stdin, or set AIGW_ADMIN_TOKEN (the aigw-admin-token secret)")
	case operator:
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.prof.AuthURL+"/admin/token", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+c.prof.AdminToken)
		}
	default:
		form := url.Values{"grant_type": {"client_credentials"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.prof.AuthURL+"/oauth/token", strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(c.prof.ClientID, c.prof.ClientSecret)
		}
	}
	if err != nil {
		return "", usageErrorf("auth URL %q: %v", c.prof.AuthURL, err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := c.send(req, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("the auth function answered no access token")
	}
	t = token{value: out.AccessToken, expires: time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}
	c.mu.Lock()
	c.tokens[operator] = t
	c.mu.Unlock()
	return t.value, nil
}

// Do sends a request to the router (path under AIGW_URL) with a token and
// decodes a JSON answer into out (when not nil; a *json.RawMessage takes the
// body as is).
func (c *Client) Do(ctx context.Context, operator bool, method, path string, body, out any, header ...string) error {
	tok, err := c.token(ctx, operator)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.prof.URL+path, rd)
	if err != nil {
		return usageErrorf("gateway URL %q: %v", c.prof.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.send(req, out)
}

// send does req and decodes a 2xx JSON answer into out; any other answer is
// an *APIError with the API's message, no answer an *UnreachableError.
func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return ctxErr
		}
		return &UnreachableError{URL: req.URL.Scheme + "://" + req.URL.Host, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return &UnreachableError{URL: req.URL.Scheme + "://" + req.URL.Host, Err: err}
	}
	if resp.StatusCode >= 300 {
		return apiError(resp.StatusCode, b)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s answered %d with a body that is not the JSON expected: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	return nil
}

// apiError reads the API's error shapes: {"error":{"code","message"}} (the
// API), {"error","error_description"} (OAuth), or any text (a gateway).
func apiError(status int, b []byte) *APIError {
	e := &APIError{Status: status}
	var api struct {
		Error json.RawMessage `json:"error"`
		Desc  string          `json:"error_description"`
	}
	if json.Unmarshal(b, &api) == nil && len(api.Error) > 0 {
		var inner struct{ Code, Message string }
		var code string
		switch {
		case json.Unmarshal(api.Error, &inner) == nil && inner.Message != "":
			e.Code, e.Message = inner.Code, inner.Message
		case json.Unmarshal(api.Error, &code) == nil:
			e.Code, e.Message = code, api.Desc
			if e.Message == "" {
				e.Message = code
			}
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 500 {
			e.Message = e.Message[:500] + "…"
		}
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
	}
	return e
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// Event is one server-sent event of a job's stream.
type Event struct {
	ID, Type string
	Data     json.RawMessage
}

// Events follows a job's event stream from the start (or after lastID) until
// its terminal state event, calling fn with each event. A dropped stream is
// resumed with Last-Event-ID (a few times in a row at most).
func (c *Client) Events(ctx context.Context, jobID, lastID string, fn func(Event) error) error {
	failures := 0
	for {
		done, err := c.readEvents(ctx, jobID, &lastID, fn)
		if done || err == nil {
			return nil
		}
		var cb *callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		var api *APIError
		if errors.As(err, &api) && api.Status < 500 || ctx.Err() != nil {
			return err
		}
		if failures++; failures > 5 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

// callbackError is an error that ends the stream for good: the callback's,
// or one from getting a token.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

func (c *Client) readEvents(ctx context.Context, jobID string, lastID *string, fn func(Event) error) (bool, error) {
	tok, err := c.token(ctx, false)
	if err != nil {
		return false, &callbackError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.prof.URL+"/v1/jobs/"+url.PathEscape(jobID)+"/events", nil)
	if err != nil {
		return false, &callbackError{usageErrorf("gateway URL %q: %v", c.prof.URL, err)}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &UnreachableError{URL: req.URL.Scheme + "://" + req.URL.Host, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return false, apiError(resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev Event
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Type == "" {
				continue
			}
			ev.Data = json.RawMessage(data.String())
			if ev.ID != "" {
				*lastID = ev.ID
			}
			if err := fn(ev); err != nil {
				return false, &callbackError{err}
			}
			if ev.Type == "state" && terminalState(ev.Data) {
				return true, nil
			}
			ev, data = Event{}, strings.Builder{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			ev.Type = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(line[5:], " "))
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, errors.New("the event stream ended before the job did")
}

func terminalState(data json.RawMessage) bool {
	var s struct{ State string }
	_ = json.Unmarshal(data, &s)
	return isTerminalState(s.State)
}

func isTerminalState(state string) bool {
	switch state {
	case "succeeded", "failed", "canceled", "expired":
		return true
	}
	return false
}

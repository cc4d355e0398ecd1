// Package async implements /async-function/{name}/…, OpenFaaS's asynchronous
// invocation contract without the community edition's limits: the request is
// kept in a Redis Stream (one hash slot, consumer group) before the 202, a
// worker invokes the function with bounded, exponentially backed-off retries,
// and POSTs the result to X-Callback-Url with X-Call-Id, X-Function-Status and
// X-Duration-Seconds. X-Callback-Url is the caller's, so it may reach public
// addresses only, unless the operator allows the network
// (AIGW_WEBHOOK_ALLOWED_NETS): it is checked before the 202 (422 otherwise),
// and every callback dials through the same guard (no proxy, no redirects, the
// address it checked). Calls left pending by a gateway that died are reclaimed
// with XAUTOCLAIM; a gateway restarted under the same consumer name resumes its
// own pending calls at once. A delivered call is marked done, so a call
// re-delivered after a restart is not called back twice.
package async

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/gateway/internal/proxy"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/rediskeys"
	"github.com/aigw/aigw/internal/stream"
	"github.com/aigw/aigw/internal/web"
)

// Invoker calls a function (proxy.Proxy).
type Invoker interface {
	Invoke(ctx context.Context, name string, req *http.Request) (*http.Response, error)
}

// Functions says whether a function is deployed.
type Functions interface {
	Exists(name string) bool
}

// Options configures a Queue; zero values take the defaults noted.
type Options struct {
	// Tag is the hash tag of every key (default "gateway-async"): the stream is
	// aigw:{<Tag>}:calls.
	Tag      string
	Group    string // consumer group (default "aigw-gateway")
	Consumer string // this gateway's name in the group (required)
	MaxBody  int64  // largest request body (default 10 MiB)
	// MaxAttempts bounds invocations of one call (default 5).
	MaxAttempts int
	// MinBackoff (default 500ms) doubles per attempt up to MaxBackoff (default 30s).
	MinBackoff, MaxBackoff time.Duration
	// ClaimIdle is how long a call stays pending before another gateway takes
	// it over (default 60s); it must exceed the longest invocation.
	ClaimIdle time.Duration
	// Workers is the number of calls processed at once (default 16).
	Workers int
	// CallbackAttempts bounds callback deliveries (default 5).
	CallbackAttempts int
	// Callbacks guards X-Callback-Url at enqueue and at every delivery (default
	// nil: public addresses only).
	Callbacks *egress.Guard
	Logger    *slog.Logger
}

func (o *Options) defaults() {
	if o.Tag == "" {
		o.Tag = "gateway-async"
	}
	if o.Group == "" {
		o.Group = "aigw-gateway"
	}
	if o.MaxBody == 0 {
		o.MaxBody = 10 << 20
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.ClaimIdle == 0 {
		o.ClaimIdle = time.Minute
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.CallbackAttempts == 0 {
		o.CallbackAttempts = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Keys of one queue; all share the hash tag, so they live in one slot.
type Keys struct {
	Stream   string // the calls, XADD/XREADGROUP
	Attempts string // hash: call id → attempts made
	donePfx  string // string per delivered call id, with a TTL
}

// KeysFor returns the keys for a tag.
func KeysFor(tag string) Keys {
	k := rediskeys.AsyncQueue(tag)
	return Keys{Stream: k.Calls, Attempts: k.Attempts, donePfx: k.DonePrefix}
}

// Done is the key marking a call id as delivered.
func (k Keys) Done(callID string) string { return k.donePfx + callID }

// Queue is the async invocation queue of one gateway.
type Queue struct {
	rdb   redis.UniversalClient
	inv   Invoker
	fns   Functions
	opts  Options
	keys  Keys
	group stream.Group
	log   *slog.Logger
	// client delivers callbacks only: it dials through opts.Callbacks, apart
	// from the invoker's loopback client.
	client *http.Client

	active sync.Map // stream message id → struct{}: calls this process works on
}

// New returns a queue; call Init before serving and Run to process calls.
func New(rdb redis.UniversalClient, inv Invoker, fns Functions, opts Options) *Queue {
	opts.defaults()
	keys := KeysFor(opts.Tag)
	client := opts.Callbacks.Client()
	client.Timeout = 30 * time.Second
	return &Queue{
		rdb: rdb, inv: inv, fns: fns, opts: opts, keys: keys, log: opts.Logger,
		group:  stream.Group{Stream: keys.Stream, Name: opts.Group},
		client: client,
	}
}

// Keys returns the queue's Redis keys.
func (q *Queue) Keys() Keys { return q.keys }

// Init creates the stream and the consumer group if they do not exist. (Run
// creates them again whenever the stream is lost, e.g. in a failover.)
func (q *Queue) Init(ctx context.Context) error {
	if err := q.group.Create(ctx, q.rdb); err != nil {
		return fmt.Errorf("async: %w", err)
	}
	return nil
}

// Stored request fields.
const (
	fID       = "id"
	fFunction = "fn"
	fMethod   = "method"
	fPath     = "path"
	fHeader   = "header"
	fBody     = "body"
	fCallback = "callback"
)

// dropHeaders are not replayed to the function.
var dropHeaders = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Proxy-Connection", "Content-Length", "X-Callback-Url"}

// ServeHTTP serves /async-function/{name}/{path...}: 202 with X-Call-Id once
// the call is in Redis.
func (q *Queue) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	web.HandleNegotiated(q.log, q.enqueue)(w, r)
}

func (q *Queue) enqueue(w http.ResponseWriter, r *http.Request) error {
	name, err := proxy.SplitName(r.PathValue("name"))
	if err != nil {
		return web.New(http.StatusNotFound, err.Error(), nil)
	}
	if !q.fns.Exists(name) {
		return web.New(http.StatusNotFound, fmt.Sprintf("function %s not found", name), nil)
	}
	callback := r.Header.Get("X-Callback-Url")
	if callback != "" {
		u, err := url.Parse(callback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return web.New(http.StatusBadRequest, fmt.Sprintf("X-Callback-Url %q: want an http(s) URL", callback), err)
		}
		if err := q.opts.Callbacks.CheckURL(r.Context(), callback); err != nil {
			e := web.Errorf(http.StatusUnprocessableEntity, "invalid_callback_url",
				"X-Callback-Url %q: %v; name a receiver at a public address", callback, err)
			e.Err = err
			return e
		}
	}
	callID := r.Header.Get("X-Call-Id")
	if callID == "" {
		callID = newID()
	} else if len(callID) > 128 {
		return web.New(http.StatusBadRequest, "X-Call-Id: at most 128 characters", nil)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, q.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return web.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (AIGW_GATEWAY_ASYNC_MAX_BODY)", q.opts.MaxBody), err)
		}
		return web.New(http.StatusBadRequest, "reading the request body", err)
	}
	h := r.Header.Clone()
	for _, k := range dropHeaders {
		h.Del(k)
	}
	h.Set("X-Call-Id", callID)
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	path := "/" + r.PathValue("path")
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	err = q.rdb.XAdd(r.Context(), &redis.XAddArgs{Stream: q.keys.Stream, Values: []any{
		fID, callID, fFunction, name, fMethod, r.Method, fPath, path, fHeader, hb, fBody, body, fCallback, callback,
	}}).Err()
	if err != nil {
		return web.New(http.StatusServiceUnavailable, "async queue unavailable", err)
	}
	q.log.Debug("async call queued", "call_id", callID, "function", name)
	w.Header().Set("X-Call-Id", callID)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// Run processes calls until ctx ends; calls in progress then stay pending in
// Redis for the next run (or another gateway) to finish.
func (q *Queue) Run(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, q.opts.Workers)
	for range q.opts.Workers {
		wg.Go(func() { q.readNew(ctx) })
	}
	wg.Go(func() { q.reclaim(ctx, sem, &wg) })
	wg.Wait()
}

func (q *Queue) readNew(ctx context.Context) {
	for ctx.Err() == nil {
		msgs, err := q.group.Read(ctx, q.rdb, q.opts.Consumer, ">", 1, 2*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("async: reading calls", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, m := range msgs {
			q.process(ctx, m)
		}
	}
}

// reclaim first resumes this consumer's own pending calls (a restart), then
// periodically takes over calls idle longer than ClaimIdle (a dead gateway).
func (q *Queue) reclaim(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	dispatch := func(m redis.XMessage) {
		if _, busy := q.active.Load(m.ID); busy {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			q.process(ctx, m)
		})
	}
	for start := "0"; ctx.Err() == nil; {
		msgs, err := q.group.Read(ctx, q.rdb, q.opts.Consumer, start, 100, 0)
		if err != nil || len(msgs) == 0 {
			if err != nil && ctx.Err() == nil {
				q.log.Warn("async: reading own pending calls", "err", err)
			}
			break
		}
		for _, m := range msgs {
			dispatch(m)
			start = m.ID
		}
	}
	period := max(q.opts.ClaimIdle/2, 100*time.Millisecond)
	for ctx.Err() == nil {
		sleep(ctx, period)
		for start := "0-0"; ctx.Err() == nil; {
			msgs, next, err := q.group.Reclaim(ctx, q.rdb, q.opts.Consumer, q.opts.ClaimIdle, start, 100)
			if err != nil {
				if ctx.Err() == nil {
					q.log.Warn("async: reclaiming calls", "err", err)
				}
				break
			}
			for _, m := range msgs {
				q.log.Info("async: took over a pending call", "msg_id", m.ID, "call_id", m.Values[fID])
				dispatch(m)
			}
			if next == "0-0" || next == "" {
				break
			}
			start = next
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type call struct {
	msgID, id, fn, method, path, callback string
	header                                http.Header
	body                                  []byte
}

func parse(m redis.XMessage) (call, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	c := call{msgID: m.ID, id: str(fID), fn: str(fFunction), method: str(fMethod), path: str(fPath), callback: str(fCallback), body: []byte(str(fBody))}
	if c.id == "" || c.fn == "" {
		return c, fmt.Errorf("stream entry %s is not an async call", m.ID)
	}
	if err := json.Unmarshal([]byte(str(fHeader)), &c.header); err != nil {
		return c, fmt.Errorf("stream entry %s: header: %w", m.ID, err)
	}
	return c, nil
}

type result struct {
	status   int
	header   http.Header
	body     []byte
	duration time.Duration
}

// process runs one call to its end: attempts, callback, acknowledgement. If ctx
// ends first it returns and the call stays pending.
func (q *Queue) process(ctx context.Context, m redis.XMessage) {
	if _, busy := q.active.LoadOrStore(m.ID, struct{}{}); busy {
		return
	}
	defer q.active.Delete(m.ID)
	c, err := parse(m)
	if err != nil {
		q.log.Error("async: dropping a malformed call", "err", err)
		q.finish(ctx, c)
		return
	}
	log := q.log.With("call_id", c.id, "function", c.fn)
	if n, err := q.rdb.Exists(ctx, q.keys.Done(c.id)).Result(); err == nil && n > 0 {
		log.Info("async: call already delivered; acknowledging")
		q.finish(ctx, c)
		return
	}
	var res result
	for {
		attempt, err := q.rdb.HIncrBy(ctx, q.keys.Attempts, c.id, 1).Result()
		if err != nil {
			log.Warn("async: counting an attempt", "err", err)
			return
		}
		q.touch(ctx, c)
		var retry bool
		res, retry = q.invoke(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if !retry || attempt >= int64(q.opts.MaxAttempts) {
			log.Info("async: call finished", "status", res.status, "attempts", attempt, "duration", res.duration)
			break
		}
		wait := min(q.opts.MinBackoff<<(attempt-1), q.opts.MaxBackoff)
		log.Info("async: attempt failed; retrying", "status", res.status, "attempt", attempt, "backoff", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
	if c.callback != "" && !q.callback(ctx, log, c, res) {
		return
	}
	q.finish(ctx, c)
}

// touch resets the call's idle time so no other gateway takes it over while it
// is being retried here.
func (q *Queue) touch(ctx context.Context, c call) {
	_ = q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: q.keys.Stream, Group: q.opts.Group, Consumer: q.opts.Consumer, Messages: []string{c.msgID},
	}).Err()
}

// retryable statuses, as OpenFaaS's queue-worker retries them.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (q *Queue) invoke(ctx context.Context, c call) (result, bool) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, c.method, "http://function"+c.path, nil)
	if err != nil {
		return result{status: http.StatusBadRequest, body: []byte(err.Error())}, false
	}
	if len(c.body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(c.body))
		req.ContentLength = int64(len(c.body))
	}
	req.Header = c.header.Clone()
	res, err := q.inv.Invoke(ctx, c.fn, req)
	if err != nil {
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, proxy.ErrUnknownFunction):
			return result{status: http.StatusNotFound, body: []byte(err.Error()), duration: time.Since(start)}, false
		case errors.Is(err, proxy.ErrNoReplica):
			status = http.StatusServiceUnavailable
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		}
		return result{status: status, body: []byte(err.Error()), duration: time.Since(start)}, true
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	r := result{status: res.StatusCode, header: res.Header, body: body, duration: time.Since(start)}
	if err != nil {
		r.status, r.body = http.StatusBadGateway, []byte(err.Error())
		return r, true
	}
	return r, retryable(r.status)
}

// callback POSTs the result; false if ctx ended first (the call stays pending).
func (q *Queue) callback(ctx context.Context, log *slog.Logger, c call, res result) bool {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.callback, bytes.NewReader(res.body))
		if err != nil {
			log.Error("async: bad callback URL; dropping the result", "err", err)
			return true
		}
		if ct := res.header.Get("Content-Type"); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("X-Call-Id", c.id)
		req.Header.Set("X-Function-Name", c.fn)
		req.Header.Set("X-Function-Status", strconv.Itoa(res.status))
		req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(res.duration.Seconds(), 'f', 6, 64))
		r, err := q.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
			if r.StatusCode < 300 {
				return true
			}
			err = fmt.Errorf("callback answered %s", r.Status)
		}
		if ctx.Err() != nil {
			return false
		}
		// An address the guard refuses is not tried again.
		if attempt >= q.opts.CallbackAttempts || errors.Is(err, egress.ErrForbiddenAddress) {
			log.Error("async: callback failed; giving up", "url", c.callback, "attempts", attempt, "err", err)
			return true
		}
		q.touch(ctx, c)
		if !sleep(ctx, min(q.opts.MinBackoff<<(attempt-1), q.opts.MaxBackoff)) {
			return false
		}
	}
}

// finish marks the call delivered, acknowledges it and removes it, in one
// transaction on the queue's slot.
func (q *Queue) finish(ctx context.Context, c call) {
	ctx = context.WithoutCancel(ctx)
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if c.id != "" {
			p.Set(ctx, q.keys.Done(c.id), "1", 24*time.Hour)
			p.HDel(ctx, q.keys.Attempts, c.id)
		}
		p.XAck(ctx, q.keys.Stream, q.opts.Group, c.msgID)
		p.XDel(ctx, q.keys.Stream, c.msgID)
		return nil
	})
	if err != nil {
		q.log.Error("async: acknowledging a call", "call_id", c.id, "err", err)
	}
}

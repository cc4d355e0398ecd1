package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/job"
)

// Outbox is the part of the job store that Drain reads and acknowledges
// (implemented by *jobstore.Store).
type Outbox interface {
	PendingNotifications(ctx context.Context, limit int) ([]job.Job, error)
	AckNotification(ctx context.Context, id string, n job.Notification) error
}

// Config tunes a Deliverer; zero values take the defaults.
type Config struct {
	// Timeout bounds one HTTP attempt (default 10s).
	Timeout time.Duration
	// MaxAge is how long a delivery is retried after its state change (default 24h).
	MaxAge time.Duration
	// Backoff is the delay after the first failed attempt (default 5s); it doubles
	// with each further failure, up to MaxBackoff (default 1h), with jitter: the
	// actual delay is drawn from [d/2, d].
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Batch is how many outbox jobs and due deliveries one run takes (default 100).
	Batch int
	// Parallel is how many deliveries are sent at once (default 8).
	Parallel int
	// Guard decides which addresses deliveries may reach (default: public ones
	// only). Every delivery dials through it, so a URL whose name resolves to a
	// forbidden address by now fails (and is retried like any failed attempt).
	Guard *egress.Guard
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives one line per failed attempt (default slog.Default()).
	Log *slog.Logger
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.Backoff <= 0 {
		c.Backoff = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Hour
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Deliverer drains the job outbox into deliveries and sends them. Several
// Deliverers (orchestrator replicas) may run at once on the same Store.
type Deliverer struct {
	store  *Store
	cfg    Config
	client *http.Client
}

// NewDeliverer returns a Deliverer on s.
func NewDeliverer(s *Store, cfg Config) *Deliverer {
	cfg.defaults()
	// Each request is bounded by Timeout (see send).
	return &Deliverer{store: s, cfg: cfg, client: cfg.Guard.Client()}
}

// MessageID is the webhook-id of the notification of job id's change to n.State
// at n.At: the same whenever the notification is drained again.
func MessageID(jobID string, n job.Notification) string {
	return "msg_" + jobID + "_" + string(n.State) + "_" + strconv.FormatInt(n.At.UnixMilli(), 10)
}

// Payload is the body of every webhook.
type Payload struct {
	// Type is job.<state>.
	Type string `json:"type"`
	// Timestamp is when the job changed state.
	Timestamp time.Time `json:"timestamp"`
	// Data is the job as the API shows it, read when the change was drained.
	Data *job.Job `json:"data"`
}

// DrainResult counts what one Drain did.
type DrainResult struct {
	// Recorded: new deliveries. Duplicates: notifications already recorded by an
	// earlier drain that crashed before its ack. Skipped: jobs without a webhook.
	Recorded   int `json:"recorded"`
	Duplicates int `json:"duplicates"`
	Skipped    int `json:"skipped"`
	Acked      int `json:"acked"`
}

// Drain moves pending notifications from the job outbox into the delivery log:
// each is recorded first (a duplicate id is a no-op) and acknowledged after, so a
// crash in between never loses or doubles a webhook.
func (d *Deliverer) Drain(ctx context.Context, outbox Outbox) (DrainResult, error) {
	var res DrainResult
	jobs, err := outbox.PendingNotifications(ctx, d.cfg.Batch)
	if err != nil {
		return res, err
	}
	for i := range jobs {
		j := &jobs[i]
		for _, n := range j.Outbox {
			if err := d.drainOne(ctx, j, n, &res); err != nil {
				return res, err
			}
			if err := outbox.AckNotification(ctx, j.ID, n); err != nil {
				return res, err
			}
			res.Acked++
		}
	}
	return res, nil
}

func (d *Deliverer) drainOne(ctx context.Context, j *job.Job, n job.Notification, res *DrainResult) error {
	if j.Webhook == nil || j.Webhook.URL == "" {
		res.Skipped++
		return nil
	}
	data := *j
	data.Outbox = nil
	body, err := json.Marshal(Payload{Type: "job." + string(n.State), Timestamp: n.At.UTC(), Data: &data})
	if err != nil {
		return fmt.Errorf("webhook payload of %s: %w", j.ID, err)
	}
	now := d.cfg.Now().UTC().Truncate(time.Millisecond)
	created := n.At.UTC().Truncate(time.Millisecond)
	inserted, err := d.store.insert(ctx, Delivery{
		ID: MessageID(j.ID, n), Tenant: j.Tenant, JobID: j.ID,
		Event: "job." + string(n.State), State: string(n.State), URL: j.Webhook.URL,
		Status: Pending, NextAttemptAt: &now, CreatedAt: created, Log: []Attempt{},
		Payload: string(body), Claim: newToken(),
	})
	if err != nil {
		return err
	}
	if inserted {
		res.Recorded++
	} else {
		res.Duplicates++
	}
	return nil
}

// DeliverResult counts what one Deliver did.
type DeliverResult struct {
	// Attempted: requests sent. Delivered: 2xx. Failed: given up (410 or MaxAge).
	// Retrying: scheduled again. Lost: claimed by another replica first.
	Attempted int `json:"attempted"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	Retrying  int `json:"retrying"`
	Lost      int `json:"lost"`
}

// Deliver sends the deliveries that are due, up to Batch of them, Parallel at a
// time, and records each outcome.
func (d *Deliverer) Deliver(ctx context.Context) (DeliverResult, error) {
	var res DeliverResult
	due, err := d.store.due(ctx, d.cfg.Now().UTC(), d.cfg.Batch)
	if err != nil {
		return res, err
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, d.cfg.Parallel)
		secrets  = map[string][]string{}
	)
	for i := range due {
		dl := &due[i]
		ok, err := d.store.claim(ctx, dl, 2*d.cfg.Timeout+5*time.Second)
		if err != nil {
			return res, errors.Join(err, waitErr(&wg, &mu, &firstErr))
		}
		if !ok {
			res.Lost++
			continue
		}
		keys, found := secrets[dl.Tenant]
		if !found {
			if keys, err = d.store.signingSecrets(ctx, dl.Tenant); err != nil {
				return res, errors.Join(err, waitErr(&wg, &mu, &firstErr))
			}
			secrets[dl.Tenant] = keys
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			outcome, err := d.attempt(ctx, dl, keys)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				return
			}
			res.Attempted++
			switch outcome {
			case Delivered:
				res.Delivered++
			case Failed:
				res.Failed++
			case Pending:
				res.Retrying++
			default:
				res.Lost++
			}
		})
	}
	return res, waitErr(&wg, &mu, &firstErr)
}

func waitErr(wg *sync.WaitGroup, mu *sync.Mutex, err *error) error {
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return *err
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// attempt sends dl once and records the outcome; it returns the delivery's new
// status, or "" when its claim lapsed meanwhile (another replica took it over).
func (d *Deliverer) attempt(ctx context.Context, dl *Delivery, secrets []string) (Status, error) {
	start := d.cfg.Now()
	code, sendErr := d.send(ctx, dl, secrets, start)
	a := Attempt{At: start.UTC().Truncate(time.Millisecond), StatusCode: code, DurationMS: d.cfg.Now().Sub(start).Milliseconds()}
	if sendErr != nil {
		a.Error = sendErr.Error()
	}
	var status Status
	var next time.Time
	deadline := dl.CreatedAt.Add(d.cfg.MaxAge)
	if dl.RedeliveredAt != nil && dl.RedeliveredAt.After(dl.CreatedAt) {
		deadline = dl.RedeliveredAt.Add(d.cfg.MaxAge)
	}
	switch {
	case sendErr == nil && code >= 200 && code < 300:
		status = Delivered
	case code == http.StatusGone:
		status = Failed
	case !d.cfg.Now().Before(deadline):
		status = Failed
		a.Error += fmt.Sprintf("; giving up: not delivered within %s", d.cfg.MaxAge)
	default:
		status = Pending
		next = d.cfg.Now().Add(d.backoff(dl.Attempts + 1))
		if next.After(deadline) {
			next = deadline
		}
		d.cfg.Log.WarnContext(ctx, "webhook attempt failed", "webhook_id", dl.ID, "job_id", dl.JobID,
			"attempt", dl.Attempts+1, "status_code", code, "err", a.Error, "next_attempt_at", next)
	}
	ok, err := d.store.record(ctx, dl, a, status, next)
	if err != nil || !ok {
		return "", err
	}
	return status, nil
}

// backoff is the delay after failed attempt n (1-based): Backoff·2^(n-1), capped
// at MaxBackoff, drawn from [d/2, d].
func (d *Deliverer) backoff(n int) time.Duration {
	delay := d.cfg.Backoff
	for i := 1; i < n && delay < d.cfg.MaxBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.MaxBackoff)
	half := delay / 2
	return half + rand.N(half+1)
}

// send makes one request. A non-2xx answer comes back as its code and an error
// quoting the start of the response body.
func (d *Deliverer) send(ctx context.Context, dl *Delivery, secrets []string, at time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	body := []byte(dl.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("bad webhook url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aigw-webhooks/1")
	if err := SetHeaders(req.Header, dl.ID, at, body, secrets...); err != nil {
		return 0, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	snippet, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		snippet = []byte("(reading the response failed: " + err.Error() + ")")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
}

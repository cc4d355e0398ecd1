// Package routerbench measures the public API served by the router function,
// from a closed-loop load generator on loopback: job submission (JWT
// verification, the per-tenant rate limit check in Redis, the algorithm lookup
// and job insert in MongoDB, the queued event and the enqueue in Redis), then
// GET /v1/jobs/{id} of the submitted jobs (JWT verification, one MongoDB read
// by _id, a queue-position estimate from Redis).
package routerbench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/bench/internal/loadgen"
	"github.com/aigw/aigw/functions/router"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/ratelimit"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config of a run.
type Config struct {
	MongoURI    string
	RedisAddrs  []string
	Duration    time.Duration
	Concurrency int
}

// Result of a run: one load per workload.
type Result struct {
	Submit, Get loadgen.Result
}

// Run serves a router on loopback and submits jobs to it for cfg.Duration.
func Run(ctx context.Context, cfg Config) (Result, error) {
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = mc.Disconnect(context.WithoutCancel(ctx)) }()
	run := fmt.Sprintf("routerbench%d", time.Now().UnixNano())
	db := mc.Database(run)
	defer func() { _ = db.Drop(context.WithoutCancel(ctx)) }()
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs})
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = rdb.Close() }()
	env := envconf.New(os.LookupEnv)
	qc := queue.ConfigFromEnv(env) // the router's own, as its function reads it
	if err := env.Err(); err != nil {
		return Result{}, err
	}
	q := queue.New(rdb, qc)
	defer func() { _ = q.Purge(context.WithoutCancel(ctx), run) }()

	key, jwks, err := newKey()
	if err != nil {
		return Result{}, err
	}
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	defer keys.Close()
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKSURL: keys.URL, Issuer: "routerbench", Audience: "aigw-api"})
	if err != nil {
		return Result{}, err
	}
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		return Result{}, err
	}
	log := slog.New(slog.DiscardHandler)
	// A limit far above the load: the bucket is checked on every request, as
	// in production, but never refuses.
	d, err := router.Build(db, jobs, rdb, v, router.Config{RateLimit: ratelimit.Limit{Rate: 1e6, Burst: 1e6}}, log)
	if err != nil {
		return Result{}, err
	}
	if _, _, err := d.Catalog.Put(ctx, algorithm.Definition{Name: "echo", Version: "1.0.0", Pool: run,
		Runtime:     algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}},
		InputSchema: []byte(`{"type":"object","required":["message"],"properties":{"message":{"type":"string"}}}`)}); err != nil {
		return Result{}, err
	}
	srv := httptest.NewServer(router.New(d))
	defer srv.Close()
	now := time.Now()
	token, err := auth.Sign(key, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "routerbench", Subject: "bench", Audience: jwt.ClaimStrings{"aigw-api"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		Tenant: "bench", Scope: auth.ScopeJobsWrite + " " + auth.ScopeJobsRead,
	})
	if err != nil {
		return Result{}, err
	}
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = cfg.Concurrency
	var idsMu sync.Mutex
	var ids []string
	var res Result
	res.Submit, err = loadgen.Run(ctx, cfg.Concurrency, cfg.Duration, func(ctx context.Context, _ int) error {
		id, err := call(ctx, client, http.MethodPost, srv.URL+"/v1/algorithms/echo/jobs", token, `{"input":{"message":"hello"}}`, http.StatusAccepted)
		if err == nil {
			idsMu.Lock()
			if len(ids) < 10000 {
				ids = append(ids, id)
			}
			idsMu.Unlock()
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("submit: %w", err)
	}
	res.Get, err = loadgen.Run(ctx, cfg.Concurrency, cfg.Duration, func(ctx context.Context, n int) error {
		_, err := call(ctx, client, http.MethodGet, srv.URL+"/v1/jobs/"+ids[n%len(ids)], token, "", http.StatusOK)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("get: %w", err)
	}
	return res, nil
}

func newKey() (auth.Key, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return auth.Key{}, nil, err
	}
	kid, err := auth.Thumbprint(priv.Public())
	if err != nil {
		return auth.Key{}, nil, err
	}
	k := auth.Key{ID: kid, Alg: auth.AlgEdDSA, Private: priv}
	jwks, err := auth.JWKS(k)
	return k, jwks, err
}

// call sends one request and returns the id in the JSON answer.
func call(ctx context.Context, client *http.Client, method, url, token, body string, want int) (string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != want {
		return "", fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
	}
	return out.ID, nil
}

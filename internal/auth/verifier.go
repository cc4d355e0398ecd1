package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier limits and defaults.
const (
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultCacheTTL           = 5 * time.Minute
	DefaultLeeway             = 60 * time.Second
	MaxLeeway                 = 60 * time.Second
	// MaxTokenBytes bounds the work done on a token before its signature is checked.
	MaxTokenBytes = 8 << 10
	// maxJWKSBytes bounds a JWK set response.
	maxJWKSBytes = 1 << 20
	// fetchTimeout bounds one JWK set fetch when the HTTP client has no timeout.
	fetchTimeout = 10 * time.Second
)

// VerifierConfig configures a Verifier. JWKSURL, Issuer and Audience are required.
type VerifierConfig struct {
	// JWKSURL is where the issuer publishes its keys, e.g.
	// http://auth.openfaas-fn:8080/.well-known/jwks.json.
	JWKSURL string
	// JWKS, when not nil, is the JWK set itself, used instead of fetching
	// JWKSURL (which may then be empty): the issuer verifying its own tokens.
	JWKS []byte
	// Issuer must equal the token's iss; Audience must be among its aud.
	Issuer, Audience string
	// HTTPClient fetches the JWK set (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// MinRefreshInterval is the least time between two fetches of the JWK set
	// (default 10 s), so a flood of tokens with unknown kids cannot make the
	// verifier hammer the issuer.
	MinRefreshInterval time.Duration
	// CacheTTL is how long a fetched JWK set is used before it is fetched
	// again (default 5 min). When a refresh fails the old keys stay in use.
	CacheTTL time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat (default and
	// maximum 60 s).
	Leeway time.Duration
	// Algorithms is the allow-list of signing algorithms (default EdDSA and
	// RS256, the only ones supported).
	Algorithms []string
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// Verifier checks access tokens against the issuer's JWK set. It is safe for
// concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser

	mu        sync.Mutex
	keys      map[string]publicKey
	rejected  map[string]string // kid → why the JWK set's key was not usable
	fetched   time.Time         // last successful fetch
	attempted time.Time         // start of the last fetch, successful or not
	fetchErr  error             // error of the last fetch, nil after a success
	inflight  chan struct{}     // closed when the running fetch ends; nil when none runs
}

// NewVerifier checks cfg and returns a Verifier. Keys are fetched lazily, on
// the first Verify.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	u, err := url.Parse(cfg.JWKSURL)
	if cfg.JWKS != nil {
		if _, _, err := parseJWKS(cfg.JWKS); err != nil {
			return nil, fmt.Errorf("auth: JWKS: %w", err)
		}
	} else if cfg.JWKSURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: JWKSURL %q: want an http(s) URL", cfg.JWKSURL)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("auth: Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth: Audience is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	for name, d := range map[string]*time.Duration{"MinRefreshInterval": &cfg.MinRefreshInterval, "CacheTTL": &cfg.CacheTTL, "Leeway": &cfg.Leeway} {
		if *d < 0 {
			return nil, fmt.Errorf("auth: %s %v is negative", name, *d)
		}
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: Leeway %v is over the maximum of %v", cfg.Leeway, MaxLeeway)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{AlgEdDSA, AlgRS256}
	}
	for _, a := range cfg.Algorithms {
		if a != AlgEdDSA && a != AlgRS256 {
			return nil, fmt.Errorf("auth: algorithm %q is not supported; want %s or %s", a, AlgEdDSA, AlgRS256)
		}
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{
		cfg: cfg,
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// Verify checks token's signature, algorithm, key, issuer, audience and
// validity period and returns its claims. Errors about the token wrap
// ErrInvalidToken; when the keys cannot be fetched the error wraps
// ErrJWKSUnavailable instead.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is over %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	var keyErr error
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if typ, ok := t.Header["typ"]; ok {
			if s, _ := typ.(string); s != "JWT" && s != "at+jwt" && s != "application/at+jwt" {
				keyErr = fmt.Errorf("%w: typ header %v, want JWT or at+jwt", ErrInvalidToken, typ)
				return nil, keyErr
			}
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = fmt.Errorf("%w: no kid header", ErrInvalidToken)
			return nil, keyErr
		}
		pk, err := v.key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		if alg := t.Method.Alg(); alg != pk.alg {
			keyErr = fmt.Errorf("%w: key %q is for %s, token is signed with %s", ErrInvalidToken, kid, pk.alg, alg)
			return nil, keyErr
		}
		return pk.key, nil
	})
	switch {
	case keyErr != nil:
		return nil, keyErr
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	case claims.Tenant == "":
		return nil, fmt.Errorf("%w: no tenant claim", ErrInvalidToken)
	case claims.Subject == "":
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	return claims, nil
}

// key returns the verification key kid, fetching the JWK set when the cache
// is stale or does not know kid, at most once per MinRefreshInterval; callers
// that arrive while a fetch runs wait for it instead of starting another.
func (v *Verifier) key(ctx context.Context, kid string) (publicKey, error) {
	v.mu.Lock()
	now := v.cfg.Now()
	pk, ok := v.keys[kid]
	fresh := !v.fetched.IsZero() && now.Sub(v.fetched) < v.cfg.CacheTTL
	if ok && fresh {
		v.mu.Unlock()
		return pk, nil
	}
	if ch := v.inflight; ch != nil {
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return publicKey{}, fmt.Errorf("%w: waiting for the key set: %v", ErrJWKSUnavailable, ctx.Err())
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.lookupLocked(kid)
	}
	if !v.attempted.IsZero() && now.Sub(v.attempted) < v.cfg.MinRefreshInterval {
		defer v.mu.Unlock()
		return v.lookupLocked(kid)
	}
	ch := make(chan struct{})
	v.inflight, v.attempted = ch, now
	v.mu.Unlock()

	keys, rejected, err := v.fetch(ctx)

	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.fetchErr = err
	} else {
		v.keys, v.rejected, v.fetched, v.fetchErr = keys, rejected, v.cfg.Now(), nil
	}
	v.inflight = nil
	close(ch)
	return v.lookupLocked(kid)
}

// lookupLocked finds kid among the cached keys, which may be stale when the
// last fetch failed.
func (v *Verifier) lookupLocked(kid string) (publicKey, error) {
	if pk, ok := v.keys[kid]; ok {
		return pk, nil
	}
	if why, ok := v.rejected[kid]; ok {
		return publicKey{}, fmt.Errorf("%w: key %q of the key set is not usable: %s", ErrInvalidToken, kid, why)
	}
	if v.fetchErr != nil {
		return publicKey{}, fmt.Errorf("%w: %v", ErrJWKSUnavailable, v.fetchErr)
	}
	return publicKey{}, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, kid)
}

// fetch gets and parses the JWK set. It is not canceled with the request
// that started it, since other requests may be waiting for it.
func (v *Verifier) fetch(ctx context.Context) (map[string]publicKey, map[string]string, error) {
	if v.cfg.JWKS != nil {
		return parseJWKS(v.cfg.JWKS)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch JWKS %s: status %s", v.cfg.JWKSURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("JWKS %s is over %d bytes", v.cfg.JWKSURL, maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS parses a JWK set. Keys that cannot be used (unknown type, small
// RSA modulus, no kid) are left out, with the reason kept by kid; a malformed
// set is an error.
func parseJWKS(body []byte) (map[string]publicKey, map[string]string, error) {
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`parse JWKS: no "keys" member`)
	}
	keys := make(map[string]publicKey, len(set.Keys))
	rejected := map[string]string{}
	for _, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil || k.Kid == "" {
			continue // a key no token can name
		}
		if _, dup := keys[k.Kid]; dup {
			delete(keys, k.Kid)
			rejected[k.Kid] = "the key set has two keys with this kid"
			continue
		}
		if _, dup := rejected[k.Kid]; dup {
			continue
		}
		pk, err := parseJWK(k)
		if err != nil {
			rejected[k.Kid] = err.Error()
			continue
		}
		keys[k.Kid] = pk
	}
	return keys, rejected, nil
}

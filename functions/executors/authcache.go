package executors

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"
)

// authTTL is how long a token this process has checked against MongoDB is
// taken without reading its credential again. A revocation through this
// function (the one replica that holds the executors' state) takes effect
// at once: it forgets the executor. Without this, every call of every
// executor (heartbeats every half second, a thousand long polls) read
// MongoDB, and a burst of them starved the function's health check.
const authTTL = 5 * time.Second

// authenticate returns the state of the executor token belongs to: from the
// executors this process knows when the token was checked within authTTL,
// else from the credential store.
func (s *Service) authenticate(ctx context.Context, token string) (*executor, error) {
	if id, ok := tokenID(token); ok {
		s.mu.Lock()
		x := s.execs[id]
		s.mu.Unlock()
		if x != nil {
			x.mu.Lock()
			fresh := !x.revoked && time.Since(x.authed) < authTTL &&
				subtle.ConstantTimeCompare([]byte(x.cred.TokenHash), []byte(hashToken(token))) == 1
			x.mu.Unlock()
			if fresh {
				return x, nil
			}
		}
	}
	cr, err := s.creds.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	x, err := s.executorOf(cr)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	x.authed = time.Now()
	x.mu.Unlock()
	return x, nil
}

// tokenID is the credential id a token names (aigwx_<id>_<secret>).
func tokenID(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "_")
	return id, ok && id != ""
}

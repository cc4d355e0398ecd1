package redisconn

import (
	"errors"
	"io"
	"strings"

	"github.com/redis/go-redis/v9"
)

// IsUnavailable reports whether err is an outage of Redis rather than a bug
// or a bad request: a closed client, a connection dropped mid-reply, or a
// cluster that is failing over (CLUSTERDOWN, TRYAGAIN, LOADING, MASTERDOWN,
// READONLY). Transport failures that any server shares (refused connections,
// timeouts) are classified by web.IsUnavailable, which the HTTP edge applies
// to every error.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

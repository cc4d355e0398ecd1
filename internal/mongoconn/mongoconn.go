// Package mongoconn opens the MongoDB client every aigw component uses, with
// bounded timeouts, and classifies MongoDB's outages: every store wraps the
// errors of its MongoDB calls with WrapUnavailable, so that an outage is
// ErrUnavailable (answered 503 with Retry-After at the edge) wherever it happens.
package mongoconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Options configures a connection. Zero durations take the defaults noted;
// options given in the URI win over them.
type Options struct {
	// URI is the connection string, e.g. mongodb://127.0.0.1:27018/ (AIGW_MONGO_URI).
	URI string
	// ServerSelectionTimeout bounds the wait for a server to answer (default 5s):
	// an unreachable MongoDB is an error within it, never a hang.
	ServerSelectionTimeout time.Duration
	// ConnectTimeout bounds a TCP connect (default 3s).
	ConnectTimeout time.Duration
	// Timeout bounds every operation that has no earlier deadline (default 15s).
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.ServerSelectionTimeout == 0 {
		o.ServerSelectionTimeout = 5 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 3 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
}

// Open connects and checks the connection with a ping. A server that does not
// answer is an error matching ErrUnavailable; a malformed URI is not.
func Open(ctx context.Context, o Options) (*mongo.Client, error) {
	if o.URI == "" {
		return nil, errors.New("mongodb: no URI given (e.g. mongodb://127.0.0.1:27018/)")
	}
	o.defaults()
	// Bounded defaults first, so that options given in the URI still win.
	client, err := mongo.Connect(options.Client().
		SetServerSelectionTimeout(o.ServerSelectionTimeout).
		SetConnectTimeout(o.ConnectTimeout).
		SetTimeout(o.Timeout).
		ApplyURI(o.URI))
	if err != nil {
		return nil, fmt.Errorf("mongodb %s: %w", o.URI, err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx)) // never connected: nothing to flush
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, o.URI, err)
	}
	return client, nil
}

// Close disconnects c within a few seconds, for deferred use on the way out;
// a failed disconnect leaves nothing to do.
func Close(c *mongo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Disconnect(ctx)
}

// ErrUnavailable is matched by the errors of a MongoDB that did not answer in
// time. It reports Unavailable() == true, which is how the HTTP edge
// (internal/web) recognises an outage without linking the MongoDB driver.
var ErrUnavailable error = outage("mongodb unavailable")

type outage string

func (e outage) Error() string     { return string(e) }
func (e outage) Unavailable() bool { return true }

// WrapUnavailable marks an error of a MongoDB that did not answer (network,
// timeout, server selection, closed client) with ErrUnavailable; any other
// error, and nil, is returned as is. Every MongoDB store uses it.
func WrapUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !isOutage(err) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// IsUnavailable reports whether err is a MongoDB outage, wrapped or not.
func IsUnavailable(err error) bool {
	return err != nil && (errors.Is(err, ErrUnavailable) || isOutage(err))
}

func isOutage(err error) bool {
	var sse mongo.ServerError
	return errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || mongo.IsNetworkError(err) ||
		errors.Is(err, mongo.ErrClientDisconnected) || (!errors.As(err, &sse) && isSelectionError(err))
}

// isSelectionError: a server selection that timed out reports Timeout() without
// being a driver timeout error.
func isSelectionError(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

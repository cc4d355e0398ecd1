package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrUnavailable is matched by the errors of a store that did not answer
// (refused or dropped connections, timeouts, 5xx answers such as SlowDown or
// ServiceUnavailable). It reports Unavailable() == true, which is how the HTTP
// edge (internal/web) answers 503 with Retry-After.
var ErrUnavailable error = outage("object store unavailable")

type outage string

func (e outage) Error() string     { return string(e) }
func (e outage) Unavailable() bool { return true }

// ErrNotFound is matched by the errors about a missing object or bucket.
var ErrNotFound = errors.New("object not found")

// ErrForbidden is matched by the store's 403 answers (bad credentials, an
// expired or tampered presigned URL).
var ErrForbidden = errors.New("object store refused the request")

// IsUnavailable reports whether err is an outage of the store, wrapped or not.
func IsUnavailable(err error) bool {
	return err != nil && (errors.Is(err, ErrUnavailable) || isOutage(err))
}

// wrap names the operation and classifies err: ErrUnavailable for an outage,
// ErrNotFound for a missing object, ErrForbidden for a refusal.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isOutage(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	case isNotFound(err):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case status(err) == http.StatusForbidden:
		return fmt.Errorf("%s: %w: %w", op, ErrForbidden, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isOutage(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if s := status(err); s != 0 {
		return s >= 500
	}
	var netErr net.Error
	var timeout interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.As(err, &netErr) || errors.As(err, &timeout) && timeout.Timeout()
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nsb *types.NoSuchBucket
	var nf *types.NotFound
	var api smithy.APIError
	if errors.As(err, &nsk) || errors.As(err, &nsb) || errors.As(err, &nf) {
		return true
	}
	if errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NoSuchBucket") {
		return true
	}
	return status(err) == http.StatusNotFound
}

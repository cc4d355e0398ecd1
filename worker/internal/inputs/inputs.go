// Package inputs fetches the files a job's input refers to ({"$file": …},
// see internal/inputfiles) into a directory of the run before the algorithm
// starts: a tenant's upload from the object store (uploads/<tenant>/<id>), or
// an https URL through the egress guard (public addresses only, no proxy,
// no redirects). Each file is streamed to disk once while its SHA-256 is
// computed; a size or checksum that is not the reference's fails the job
// (code input_error, not retried) and leaves no file behind. The algorithm
// sees {"path", "size", "sha256"} in place of each reference.
package inputs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/internal/web"
)

// DefaultMaxBytes caps a URL's file whose reference gives no size.
const DefaultMaxBytes = 5 << 30

// Fetcher fetches input files.
type Fetcher struct {
	// Store holds uploads; nil: upload references fail (unless OpenUpload).
	Store *objstore.Store
	// OpenUpload, when set, opens uploads in Store's place: a joined worker
	// reads the uploads of the jobs it holds through the executor API. An
	// error that web.IsUnavailable says is an outage is retried.
	OpenUpload func(ctx context.Context, j *job.Job, upload string) (io.ReadCloser, error)
	// HTTP fetches URLs (egress.Guard.Client()).
	HTTP *http.Client
	// MaxBytes caps a file whose reference gives no size (default 5 GiB).
	MaxBytes int64
}

// Error is a failed fetch. Retryable: the source did not answer (a later
// attempt may succeed); otherwise the input itself is wrong (a missing
// upload, a 4xx, a size or checksum mismatch).
type Error struct {
	Path      string // the reference's JSON Pointer
	Retryable bool
	Err       error
}

func (e *Error) Error() string { return fmt.Sprintf("input file at %s: %v", e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Fetch downloads every reference of j's input into dir (created, readable
// by every user, so that a run as another user reads it) and returns the
// input with each replaced by inputfiles.Local. An input without references
// is returned as it is.
func (f *Fetcher) Fetch(ctx context.Context, j *job.Job, dir string) (json.RawMessage, error) {
	if !inputfiles.Has(j.Input) {
		return j.Input, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	n := 0
	return inputfiles.Rewrite(j.Input, func(r inputfiles.Ref) (any, error) {
		n++
		local, err := f.fetch(ctx, j, r, filepath.Join(dir, strconv.Itoa(n)+"-"+name(r)))
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				err = &Error{Path: r.Path, Retryable: retryable(err), Err: err}
			}
			return nil, err
		}
		return local, nil
	})
}

var unsafeRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// name is a safe file name for a reference: the URL's last path element, or
// the upload id.
func name(r inputfiles.Ref) string {
	n := r.Upload
	if r.URL != "" {
		if u, err := url.Parse(r.URL); err == nil {
			n = path.Base(u.Path)
		}
	}
	n = unsafeRE.ReplaceAllString(n, "_")
	if n == "" || n == "." || n == ".." || n == "_" {
		n = "file"
	}
	if len(n) > 100 {
		n = n[len(n)-100:]
	}
	return n
}

func retryable(err error) bool {
	return objstore.IsUnavailable(err) || web.IsUnavailable(err)
}

func (f *Fetcher) fetch(ctx context.Context, j *job.Job, r inputfiles.Ref, dst string) (inputfiles.Local, error) {
	fail := func(retry bool, err error) (inputfiles.Local, error) {
		return inputfiles.Local{}, &Error{Path: r.Path, Retryable: retry, Err: err}
	}
	body, err := f.open(ctx, j, r)
	if err != nil {
		return inputfiles.Local{}, err
	}
	defer body.Close()
	limit := r.Size
	if limit <= 0 {
		limit = f.MaxBytes
		if limit <= 0 {
			limit = DefaultMaxBytes
		}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return inputfiles.Local{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(body, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case err != nil:
		_ = os.Remove(dst)
		return fail(retryable(err), err)
	case n > limit && r.Size > 0 || r.Size > 0 && n != r.Size:
		_ = os.Remove(dst)
		return fail(false, fmt.Errorf("%w: %s bytes, want %d", inputfiles.ErrMismatch, atLeast(n, limit), r.Size))
	case n > limit:
		_ = os.Remove(dst)
		return fail(false, fmt.Errorf("over the limit of %d bytes", limit))
	case r.SHA256 != "" && got != r.SHA256:
		_ = os.Remove(dst)
		return fail(false, fmt.Errorf("%w: SHA-256 %s, want %s", inputfiles.ErrMismatch, got, r.SHA256))
	}
	return inputfiles.Local{Path: dst, Size: n, SHA256: got}, nil
}

func atLeast(n, limit int64) string {
	if n > limit {
		return "more than " + strconv.FormatInt(limit, 10)
	}
	return strconv.FormatInt(n, 10)
}

// open starts reading a reference's file.
func (f *Fetcher) open(ctx context.Context, j *job.Job, r inputfiles.Ref) (io.ReadCloser, error) {
	fail := func(retry bool, err error) (io.ReadCloser, error) {
		return nil, &Error{Path: r.Path, Retryable: retry, Err: err}
	}
	if r.Upload != "" && f.OpenUpload != nil {
		body, err := f.OpenUpload(ctx, j, r.Upload)
		if err != nil {
			return fail(retryable(err), fmt.Errorf("upload %s: %w", r.Upload, err))
		}
		return body, nil
	}
	if r.Upload != "" {
		if f.Store == nil {
			return fail(false, errors.New("this worker has no object store for uploads"))
		}
		body, _, err := f.Store.Get(ctx, uploads.Key(j.Tenant, r.Upload))
		if errors.Is(err, objstore.ErrNotFound) {
			return fail(false, fmt.Errorf("upload %s was never uploaded", r.Upload))
		}
		if err != nil {
			return fail(retryable(err), err)
		}
		return body, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return fail(false, err)
	}
	resp, err := f.HTTP.Do(req)
	if err != nil {
		// The guard refuses a non-public address for good.
		return fail(retryable(err) && !isRefused(err), err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
			fmt.Errorf("GET %s: %s", r.URL, resp.Status))
	}
	return resp.Body, nil
}

func isRefused(err error) bool { return errors.Is(err, egress.ErrForbiddenAddress) }

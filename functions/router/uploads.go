package router

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/internal/web"
)

// Uploads records uploads (uploads.Store).
type Uploads interface {
	Create(ctx context.Context, tenant string, size int64, sum string, now, expires time.Time) (uploads.Upload, error)
}

// MaxUploadSize is the most one upload may be: a presigned PUT is one S3
// PUT, at most 5 GiB.
const MaxUploadSize = 5 << 30

// uploadLimit is tenant's upload limit: its own (AIGW_UPLOAD_LIMITS), else
// the default (AIGW_UPLOAD_LIMIT).
func (a *api) uploadLimit(tenant string) int64 {
	if n, ok := a.UploadLimits[tenant]; ok {
		return n
	}
	return a.UploadLimit
}

// createUpload: POST /v1/uploads {"size": N, "sha256": "…"} → 201
// {"id", "upload_url", "expires_at", "size", "sha256"}: a presigned PUT of
// exactly size bytes, valid for UploadURLTTL. Over the tenant's limit: 413.
// A job's input then names it as {"$file": "<id>"}.
func (a *api) createUpload(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	if a.Files == nil || a.Uploads == nil {
		return web.Errorf(http.StatusServiceUnavailable, "no_object_store", "uploads need an object store, and this deployment has none")
	}
	var body struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if err := web.DecodeJSON(w, r, 4<<10, &body); err != nil {
		return err
	}
	switch {
	case body.Size <= 0:
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_upload", "size must be a positive number of bytes")
	case !inputfiles.ValidSHA256(body.SHA256):
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_upload", "sha256 must be the file's SHA-256 as 64 lowercase hex digits")
	}
	if limit := a.uploadLimit(t); body.Size > limit {
		return web.Errorf(http.StatusRequestEntityTooLarge, "upload_too_large", "an upload of %d bytes is over this tenant's limit of %d bytes", body.Size, limit)
	}
	now := time.Now()
	u, err := a.Uploads.Create(r.Context(), t, body.Size, body.SHA256, now, now.Add(a.UploadURLTTL))
	if err != nil {
		return err
	}
	url, exp, err := a.Files.PresignPut(r.Context(), u.Key, u.Size, a.UploadURLTTL)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, struct {
		ID        string    `json:"id"`
		UploadURL string    `json:"upload_url"`
		ExpiresAt time.Time `json:"expires_at"`
		Size      int64     `json:"size"`
		SHA256    string    `json:"sha256"`
	}{u.ID, url, exp.UTC().Truncate(time.Second), u.Size, u.SHA256})
	return nil
}

// parseSize reads a byte count: a whole number, or one with a KiB, MiB or
// GiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > MaxUploadSize/mult {
		return 0, fmt.Errorf("want a size from 1 byte to 5GiB, such as 1048576, 512MiB or 2GiB")
	}
	return n * mult, nil
}

// parseUploadLimits reads tenant=size pairs, comma- or space-separated.
func parseUploadLimits(v string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, f := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' }) {
		t, s, ok := strings.Cut(f, "=")
		if !ok || t == "" {
			return nil, fmt.Errorf("%q: want tenant=size", f)
		}
		n, err := parseSize(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", f, err)
		}
		out[t] = n
	}
	return out, nil
}

package inputfiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/uploads"
)

// Uploads finds a tenant's uploads and records that a job references one
// (uploads.Store).
type Uploads interface {
	Use(ctx context.Context, tenant, id string, now time.Time) (uploads.Upload, error)
}

// Resolver checks a submitted input's references and rewrites them to their
// canonical form: an upload must be the tenant's own (another tenant's is
// the same as none), a URL must be https and name or resolve to a public
// address (URLs decides; its allowed networks too). An upload a job
// references is kept for its tenant's retention from then on.
type Resolver struct {
	Uploads Uploads
	URLs    *egress.Guard
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Resolve returns input with every reference canonical. A bad reference is
// an *Error naming it; outages of the upload store are returned as they are.
func (r *Resolver) Resolve(ctx context.Context, tenant string, input json.RawMessage) (json.RawMessage, error) {
	return Rewrite(input, func(ref Ref) (any, error) {
		bad := func(format string, args ...any) error {
			return &Error{Path: ref.Path, Message: fmt.Sprintf(format, args...)}
		}
		if ref.URL != "" {
			if !strings.HasPrefix(ref.URL, "https://") {
				return nil, bad("file URLs must be https: %q", ref.URL)
			}
			if err := r.URLs.CheckURL(ctx, ref.URL); err != nil {
				return nil, bad("file URL refused: %v", err)
			}
			return Canonical(ref.URL, ref.Size, ref.SHA256), nil
		}
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		u, err := r.Uploads.Use(ctx, tenant, ref.Upload, now())
		if errors.Is(err, uploads.ErrNotFound) {
			return nil, bad("no upload %s", ref.Upload)
		}
		if err != nil {
			return nil, err
		}
		if ref.Size != 0 && ref.Size != u.Size || ref.SHA256 != "" && ref.SHA256 != u.SHA256 {
			return nil, bad("upload %s is %d bytes with SHA-256 %s, not what the reference says", u.ID, u.Size, u.SHA256)
		}
		return Canonical(u.ID, u.Size, u.SHA256), nil
	})
}

package router

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"slices"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/web"
)

// Files is the object store as the API uses it (objstore.Store).
type Files interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (string, time.Time, error)
	PresignPut(ctx context.Context, key string, size int64, ttl time.Duration) (string, time.Time, error)
}

// present is j as the API serves it: each artifact in the object store with
// a presigned download URL of its own, valid for ArtifactURLTTL. It returns
// a copy; j is left as it is. A URL that cannot be made is left out (and
// logged): the rest of the job is still served.
func (a *api) present(ctx context.Context, j *job.Job) *job.Job {
	if j == nil || a.Files == nil || len(j.Artifacts) == 0 {
		return j
	}
	out := *j
	out.Artifacts = slices.Clone(j.Artifacts)
	for i := range out.Artifacts {
		art := &out.Artifacts[i]
		if art.Key == "" {
			continue
		}
		u, exp, err := a.Files.PresignGet(ctx, art.Key, a.ArtifactURLTTL, path.Base(art.Name))
		if err != nil {
			a.log.Warn("presign artifact failed", "job_id", j.ID, "artifact", art.Name, "err", err)
			continue
		}
		exp = exp.UTC().Truncate(time.Second)
		art.URL, art.URLExpiresAt = u, &exp
	}
	return &out
}

// writeGone answers a purged job: 410 with its id and when it was purged
// (its retention ran out; see the orchestrator's Purger).
func writeGone(w http.ResponseWriter, j *job.Job) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	at := j.PurgedAt.UTC()
	web.WriteJSON(w, http.StatusGone, struct {
		Error    apiError  `json:"error"`
		ID       string    `json:"id"`
		PurgedAt time.Time `json:"purged_at"`
	}{apiError{"gone", fmt.Sprintf("job %s was purged at %s: its retention ran out", j.ID, at.Format(time.RFC3339))}, j.ID, at})
}

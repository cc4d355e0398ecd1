package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/uploads"
)

// Retention is how long finished jobs keep their input, output, log and
// artifacts: Default for every tenant (0: for ever) but those in Tenants.
type Retention struct {
	Default time.Duration
	Tenants map[string]time.Duration
}

// ParseRetentions reads tenant=duration pairs (comma- or space-separated;
// 0 keeps a tenant's jobs for ever).
func ParseRetentions(v string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, f := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' }) {
		t, ds, ok := strings.Cut(f, "=")
		d, err := time.ParseDuration(ds)
		if !ok || t == "" || err != nil || d < 0 {
			return nil, fmt.Errorf("%q: want tenant=duration, such as acme=720h", f)
		}
		out[t] = d
	}
	return out, nil
}

// PurgeResult is what one purge did: jobs purged, objects deleted (their
// artifacts and uploads), and uploads deleted.
type PurgeResult struct {
	Purged  int `json:"purged"`
	Objects int `json:"objects"`
	Uploads int `json:"uploads"`
	// UploadsKept are uploads whose time was up but that a job that may
	// still run references: kept, and counted as referenced now.
	UploadsKept int `json:"uploads_kept"`
}

// Purger deletes what finished jobs leave behind once their retention has
// run out: the objects under the job's artifact prefix in the object store,
// its GridFS artifacts, then its input, output, log and artifact list in the
// record, which keeps its state and gets purged_at (the API answers 410).
// Files go first, so a purge cut short is finished by the next tick and
// nothing is left behind.
//
// It deletes uploads too (object, then record): one no job referenced once
// UploadGrace has passed since its upload URL expired, one that jobs
// referenced once its tenant's retention has passed since the last of them
// was submitted (and since its URL expired). An upload that a job of its
// tenant that may still run references (queued, running, or failed or
// expired and not purged: a retry queues it again) is never deleted: the
// purge takes its claim back and counts it as referenced then. A tenant
// kept for ever keeps the uploads its jobs referenced.
type Purger struct {
	Jobs      *jobstore.Store
	Objects   *objstore.Store     // nil: no object store (and no uploads)
	GridFS    *mongo.GridFSBucket // artifacts of deployments without a store
	Uploads   *uploads.Store      // nil: uploads are not purged
	Retention Retention
	// UploadGrace is how long an upload no job referenced is kept after its
	// upload URL expired.
	UploadGrace time.Duration
	Batch       int // jobs (uploads) per tenant group and tick (default 200)
	Now         func() time.Time
	Log         *slog.Logger
}

// cutoffs are the retention's groups at now, for jobs and uploads alike:
// each tenant with a retention of its own (sorted), finished before now
// minus it, then every other tenant by the default (none when the default
// keeps for ever).
func (r Retention) cutoffs(now time.Time) []jobstore.PurgeFilter {
	var out []jobstore.PurgeFilter
	own := slices.Sorted(maps.Keys(r.Tenants))
	for _, t := range own {
		if d := r.Tenants[t]; d > 0 {
			out = append(out, jobstore.PurgeFilter{Tenant: t, Before: now.Add(-d)})
		}
	}
	if r.Default > 0 {
		out = append(out, jobstore.PurgeFilter{Except: own, Before: now.Add(-r.Default)})
	}
	return out
}

// Purge runs one pass.
func (p *Purger) Purge(ctx context.Context) (PurgeResult, error) {
	var res PurgeResult
	now := p.Now()
	batch := p.Batch
	if batch <= 0 {
		batch = 200
	}
	for _, f := range p.Retention.cutoffs(now) {
		jobs, err := p.Jobs.ListPurgeable(ctx, f, batch)
		if err != nil {
			return res, err
		}
		for _, j := range jobs {
			if p.Objects != nil {
				n, err := p.Objects.DeletePrefix(ctx, objstore.ArtifactPrefix(j.ID))
				res.Objects += n
				if err != nil {
					return res, fmt.Errorf("purge job %s: %w", j.ID, err)
				}
			}
			for _, a := range j.Artifacts {
				if a.FileID == "" || p.GridFS == nil {
					continue
				}
				id, err := bson.ObjectIDFromHex(a.FileID)
				if err != nil {
					continue
				}
				if err := p.GridFS.Delete(ctx, id); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
					return res, fmt.Errorf("purge job %s: artifact %s: %w", j.ID, a.Name, err)
				}
				res.Objects++
			}
			ok, err := p.Jobs.Purge(ctx, j.ID, now)
			if err != nil {
				return res, err
			}
			if ok {
				res.Purged++
				p.Log.InfoContext(ctx, "job purged", "job_id", j.ID, "tenant", j.Tenant, "finished_at", j.FinishedAt)
			}
		}
	}
	if p.Uploads == nil || p.Objects == nil {
		return res, nil
	}
	err := p.purgeUploads(ctx, now, batch, &res)
	return res, err
}

// purgeUploads claims the uploads whose time is up, then deletes each
// claimed one's object and record (those a pass cut short first).
func (p *Purger) purgeUploads(ctx context.Context, now time.Time, batch int, res *PurgeResult) error {
	filters := []uploads.PurgeFilter{{Unused: true, Before: now.Add(-p.UploadGrace)}}
	for _, c := range p.Retention.cutoffs(now) {
		filters = append(filters, uploads.PurgeFilter{Tenant: c.Tenant, Except: c.Except, Before: c.Before})
	}
	for _, f := range filters {
		if _, err := p.Uploads.Claim(ctx, f, now, batch); err != nil {
			return fmt.Errorf("claim uploads to purge: %w", err)
		}
	}
	ups, err := p.Uploads.Purging(ctx, batch*len(filters))
	if err != nil {
		return fmt.Errorf("uploads to purge: %w", err)
	}
	inUse, err := p.uploadsInUse(ctx, ups)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if inUse[u.ID] {
			if err := p.Uploads.Keep(ctx, u.ID, now); err != nil {
				return fmt.Errorf("keep upload %s: %w", u.ID, err)
			}
			res.UploadsKept++
			p.Log.InfoContext(ctx, "upload kept: a job that may still run references it", "upload_id", u.ID, "tenant", u.Tenant)
			continue
		}
		n, err := p.Objects.DeletePrefix(ctx, u.Key)
		res.Objects += n
		if err != nil {
			return fmt.Errorf("purge upload %s: %w", u.ID, err)
		}
		if err := p.Uploads.Delete(ctx, u.ID); err != nil {
			return fmt.Errorf("purge upload %s: %w", u.ID, err)
		}
		res.Uploads++
		p.Log.InfoContext(ctx, "upload purged", "upload_id", u.ID, "tenant", u.Tenant, "expires_at", u.ExpiresAt, "used_at", u.UsedAt)
	}
	return nil
}

// uploadsInUse returns which of ups (those jobs referenced) a job of the
// upload's tenant that may still run references (jobstore.EachMayRun). An
// input whose references cannot be read keeps every upload whose id it
// contains.
func (p *Purger) uploadsInUse(ctx context.Context, ups []uploads.Upload) (map[string]bool, error) {
	byTenant := map[string]map[string]bool{}
	for _, u := range ups {
		if u.UsedAt == nil {
			continue // never referenced: no job can hold it
		}
		if byTenant[u.Tenant] == nil {
			byTenant[u.Tenant] = map[string]bool{}
		}
		byTenant[u.Tenant][u.ID] = true
	}
	inUse := map[string]bool{}
	for _, tenant := range slices.Sorted(maps.Keys(byTenant)) {
		ids := byTenant[tenant]
		err := p.Jobs.EachMayRun(ctx, tenant, func(j *job.Job) error {
			if !inputfiles.Has(j.Input) {
				return nil
			}
			refs, err := inputfiles.Find(j.Input)
			if err != nil {
				for id := range ids {
					if bytes.Contains(j.Input, []byte(id)) {
						inUse[id] = true
					}
				}
				return nil
			}
			for _, r := range refs {
				if ids[r.Upload] {
					inUse[r.Upload] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("uploads in use: %w", err)
		}
	}
	return inUse, nil
}

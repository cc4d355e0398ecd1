package router

import (
	"net/http"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/web"
)

// defaultUsageRange is the range of a usage query without from.
const defaultUsageRange = 30 * 24 * time.Hour

// usageList is GET /v1/usage's answer.
type usageList struct {
	Usage []jobstore.UsageRow `json:"usage"`
}

// getUsage: GET /v1/usage?from=&to=&group_by=algorithm|day → the metered
// GPU- and CPU-seconds of the jobs that finished in [from, to) (default: the
// last 30 days up to now), per tenant and algorithm or UTC day. A tenant
// sees its own; an operator token (algorithms:admin) every tenant's.
func (a *api) getUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, _ := auth.FromContext(ctx)
	q := jobstore.UsageQuery{GroupBy: jobstore.ByAlgorithm, To: time.Now().UTC()}
	if !c.HasScope(auth.ScopeAlgorithmsAdmin) {
		t, err := auth.Tenant(r)
		if err != nil {
			return err
		}
		q.Tenant = t
	}
	var fromSet bool
	for k, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "from", "to":
			at, err := parseUsageTime(v)
			if err != nil {
				return web.BadRequest("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z or a date such as 2026-01-02", k, v)
			}
			if k == "from" {
				q.From, fromSet = at, true
			} else {
				q.To = at
			}
		case "group_by":
			if v != jobstore.ByAlgorithm && v != jobstore.ByDay {
				return web.BadRequest("group_by %q: want algorithm or day", v)
			}
			q.GroupBy = v
		default:
			return web.BadRequest("unknown query parameter %q (want from, to or group_by)", k)
		}
	}
	if !fromSet {
		q.From = q.To.Add(-defaultUsageRange)
	}
	if !q.From.Before(q.To) {
		return web.BadRequest("from %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.To.Sub(q.From) > jobstore.MaxUsageRange {
		return web.BadRequest("from %s to %s is longer than %d days: ask for a shorter range",
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), int(jobstore.MaxUsageRange/(24*time.Hour)))
	}
	rows, err := a.Jobs.Usage(ctx, q)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, usageList{Usage: rows})
	return nil
}

// parseUsageTime reads an RFC 3339 time or a date (UTC midnight).
func parseUsageTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, v)
}

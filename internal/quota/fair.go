package quota

import "context"

// FairPolicy is tenant's fair-share weight and max_running (0: none) in pool,
// cached (a fairq.Policy).
func (c *Cache) FairPolicy(ctx context.Context, tenant, pool string) (float64, int, error) {
	t, err := c.Get(ctx, tenant)
	if err != nil {
		return 0, 0, err
	}
	q, _ := t.Pool(pool)
	return t.WeightIn(pool), q.MaxRunning, nil
}

package orchestrator

import "sync"

// pageSize bounds the jobs of one pool that one pass of the reaper or the
// reconciler looks at: a pass reads a page of every pool with such jobs, so a
// pool with a backlog never hides another pool's jobs, and successive passes
// walk each pool's jobs to the end and start over.
const pageSize = 100

// cursors remember, per pool, the last job id a scan has looked at. They live
// in the process: a restarted orchestrator starts each pool from its oldest
// job, which only repeats checks that are idempotent anyway.
type cursors struct {
	mu    sync.Mutex
	after map[string]string
}

// next is the id the pool's next page starts after ("" for its first job).
func (c *cursors) next(pool string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.after[pool]
}

// advance moves the pool's cursor past a page of n jobs ending at last; a
// short page was the pool's last, and the next pass starts over.
func (c *cursors) advance(pool, last string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.after == nil {
		c.after = map[string]string{}
	}
	if n < pageSize {
		delete(c.after, pool)
		return
	}
	c.after[pool] = last
}

package jobstore

import (
	"context"
	"testing"

	"github.com/aigw/aigw/internal/testenv"
)

// A second Store on a database that already has the indexes (a restarted
// function) must open cleanly.
func TestNewTwiceOnOneDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.MongoDB(t)
	for i := range 3 {
		s, err := New(ctx, db, Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		if _, _, err := s.Create(ctx, newJob("acme", "echo")); err != nil {
			t.Fatalf("create after open %d: %v", i+1, err)
		}
	}
}

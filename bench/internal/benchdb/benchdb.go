// Package benchdb sweeps the MongoDB databases that benches create and drop
// when they end: a run killed before its clean-up (SIGKILL, a lost terminal)
// leaves its database behind, and on aigw-devmongo that is tens of MB of
// SQLite files each.
package benchdb

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/mongoconn"
)

// prefixes are the benches' database names: a prefix, then the run's start
// as Unix nanoseconds in the given base.
var prefixes = []struct {
	prefix string
	base   int
}{
	{"aigw_bench_", 10},      // storebench
	{"aigw_cyclebench_", 10}, // cyclebench
	{"routerbench", 10},      // routerbench
	{"workerbench", 10},      // workerbench
	{"executorbench", 10},    // executorbench
	{"bench_gw_", 36},        // gatewaybench
}

// Started reports when the bench run that named database name started; false
// when name is not a bench's.
func Started(name string) (time.Time, bool) {
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok || rest == "" {
			continue
		}
		n, err := strconv.ParseInt(rest, p.base, 64)
		if err != nil || n <= 0 {
			continue
		}
		return time.Unix(0, n), true
	}
	return time.Time{}, false
}

// DropStale drops the bench databases whose run started more than olderThan
// before now, and returns their names. Runs of other benches going on at the
// same time (younger than olderThan) are left alone.
func DropStale(ctx context.Context, client *mongo.Client, olderThan time.Duration, now time.Time) ([]string, error) {
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var dropped []string
	for _, name := range names {
		started, ok := Started(name)
		if !ok || now.Sub(started) < olderThan {
			continue
		}
		if err := client.Database(name).Drop(ctx); err != nil {
			return dropped, fmt.Errorf("drop %s: %w", name, err)
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}

// StaleAfter is how old a bench run's database must be for Sweep to drop it:
// longer than any bench runs, so a run going on beside is never touched.
const StaleAfter = 6 * time.Hour

// Sweep drops, on the MongoDB at uri, the databases of bench runs that
// started more than StaleAfter ago, and logs what it dropped. It is
// best-effort: a failure is logged and the benches go on.
func Sweep(ctx context.Context, uri string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: uri})
	if err != nil {
		slog.Warn("bench databases not swept", "err", err)
		return
	}
	defer mongoconn.Close(client)
	dropped, err := DropStale(ctx, client, StaleAfter, time.Now())
	if err != nil {
		slog.Warn("bench databases not all swept", "err", err)
	}
	if len(dropped) > 0 {
		slog.Info("dropped databases that killed bench runs left", "databases", dropped)
	}
}

// Package readiness checks the servers a function needs before its health
// check answers ready (fnserve.Health).
package readiness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Stores pings MongoDB (db's client) and Redis, within timeout in all, and
// joins their failures, each named.
func Stores(ctx context.Context, timeout time.Duration, db *mongo.Database, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	if err := db.Client().Ping(ctx, nil); err != nil {
		errs = append(errs, fmt.Errorf("mongodb: %w", err))
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		errs = append(errs, fmt.Errorf("redis: %w", err))
	}
	return errors.Join(errs...)
}

package workerbench

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
)

// stores are one bench run's servers: a fresh database named run and the
// queue's pool run on the shared Redis Cluster.
type stores struct {
	db    *mongo.Database
	rdb   redis.UniversalClient
	q     *queue.Queue
	jobs  *jobstore.Store
	algos *algorithm.Store
}

// openStores opens run's stores; cleanup purges the pool, drops the database
// and closes the clients (call it even when openStores failed).
func openStores(ctx context.Context, cfg Config, run string) (s *stores, cleanup func(), err error) {
	s = &stores{}
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	bg := context.WithoutCancel(ctx)
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { _ = mc.Disconnect(bg) })
	s.db = mc.Database(run)
	undo = append(undo, func() { _ = s.db.Drop(bg) })
	if s.rdb, err = redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs}); err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { _ = s.rdb.Close() })
	s.q = queue.New(s.rdb, queue.Config{Lease: 30 * time.Second})
	undo = append(undo, func() { _ = s.q.Purge(bg, run) })
	if s.jobs, err = jobstore.New(ctx, s.db, jobstore.Options{}); err != nil {
		return nil, cleanup, err
	}
	s.algos = algorithm.NewStore(s.db)
	return s, cleanup, nil
}

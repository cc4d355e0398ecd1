// Package redisconn opens the Redis client every aigw component uses: a cluster
// client tuned to follow a failover within seconds, or a plain client when the one
// address given is a Redis without cluster mode (e.g. a CI service container).
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a connection. Zero values take the defaults noted.
type Options struct {
	// Addrs are the seed nodes, host:port.
	Addrs    []string
	Username string
	Password string
	// PoolSize is the connection pool size per node (default 64: blocking stream
	// reads hold a connection each).
	PoolSize int
	// DialTimeout (default 2s), ReadTimeout (default 3s), WriteTimeout (default 3s).
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// ReloadInterval is how often the cluster client reloads the slot map
	// (default 1s). go-redis's own default keeps dialling a dead master for 60 s
	// after a failover; 1s makes it follow the promoted replica in 3–4 s.
	ReloadInterval time.Duration
}

func (o *Options) defaults() {
	if o.PoolSize == 0 {
		o.PoolSize = 64
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 3 * time.Second
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = time.Second
	}
}

// ParseAddrs splits a comma-separated address list (AIGW_REDIS_ADDRS) and checks
// each entry has the form host:port.
func ParseAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		i := strings.LastIndex(a, ":")
		if i <= 0 || i == len(a)-1 {
			return nil, fmt.Errorf("redis address %q: want host:port", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no redis address given (want host:port[,host:port...])")
	}
	return out, nil
}

// protocol is RESP2. With RESP3, go-redis checks every connection for pending push
// notifications before each command, one more read syscall per round trip; aigw
// uses no push notifications (measured: ~20% of the queue benchmark's CPU).
const protocol = 2

// Open connects and checks the connection with a PING. With one address it asks
// the server whether cluster mode is on and returns a plain client if not; with
// several it returns a cluster client.
func Open(ctx context.Context, o Options) (redis.UniversalClient, error) {
	o.defaults()
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: no address given")
	}
	if len(o.Addrs) == 1 {
		single := redis.NewClient(&redis.Options{
			Addr: o.Addrs[0], Username: o.Username, Password: o.Password, Protocol: protocol,
			PoolSize: o.PoolSize, DialTimeout: o.DialTimeout,
			ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		})
		_, err := single.ClusterInfo(ctx).Result()
		switch {
		case err != nil && strings.Contains(err.Error(), "cluster support disabled"):
			return single, nil
		case err != nil:
			_ = single.Close()
			return nil, fmt.Errorf("redis %s unreachable: %w", o.Addrs[0], err)
		}
		_ = single.Close()
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		// go-redis appends discovered nodes to Addrs: give it a slice of its own,
		// or clients opened from one address list race on it.
		Addrs: slices.Clone(o.Addrs), Username: o.Username, Password: o.Password, Protocol: protocol,
		PoolSize: o.PoolSize, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		ClusterStateReloadInterval: o.ReloadInterval,
		MaxRedirects:               8,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis cluster %v unreachable: %w", o.Addrs, err)
	}
	return c, nil
}

// Masters returns the number of master nodes: the cluster's masters, or 1 for a
// plain client.
func Masters(ctx context.Context, c redis.UniversalClient) (int, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return 1, nil
	}
	shards, err := cc.ClusterShards(ctx).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range shards {
		for _, node := range s.Nodes {
			if node.Role == "master" && node.Health == "online" {
				n++
			}
		}
	}
	return n, nil
}

// ForEachMaster runs fn on every master (or on the single client).
func ForEachMaster(ctx context.Context, c redis.UniversalClient, fn func(ctx context.Context, c *redis.Client) error) error {
	switch t := c.(type) {
	case *redis.ClusterClient:
		return t.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, t)
	}
	return fmt.Errorf("redis: unsupported client type %T", c)
}

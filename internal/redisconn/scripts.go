package redisconn

import "github.com/redis/go-redis/v9"

// CompareAndDelete deletes a key only while it still holds the value the
// caller last saw (a lease's token, a hint's count), so a concurrent writer's
// newer value survives.
//
//	KEYS[1] the key   ARGV[1] the value expected
//
// Result: 1 when deleted, 0 when the key is missing or holds another value.
var CompareAndDelete = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

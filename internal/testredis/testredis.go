// Package testredis gives tests the real Redis they may use and a key prefix of their own,
// and deletes that prefix's keys when the test ends (never a FLUSHDB: the database may not
// be the tests').
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Env names the variable that points the tests at a real Redis (host:port).
const Env = "ZASYNC_TEST_REDIS"

// Addr returns the real Redis the tests may use, or "" when there is none.
func Addr() string { return os.Getenv(Env) }

// Prefix returns a key prefix no other test uses: zasynctest-<tag>-<random>.
func Prefix(tag string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "zasynctest-" + tag + "-" + hex.EncodeToString(b)
}

// DeleteAtCleanup deletes every key under prefix in the Redis at addr when t ends, with a
// client of its own (so that it does not depend on the order of the test's other cleanups),
// and reports a deletion that fails.
func DeleteAtCleanup(t testing.TB, addr, prefix string) {
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var keys []string
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("list the keys under %s: %v", prefix, err)
			return
		}
		for chunk := range slices.Chunk(keys, 500) {
			if err := c.Del(ctx, chunk...).Err(); err != nil {
				t.Errorf("delete the keys under %s: %v", prefix, err)
				return
			}
		}
	})
}

// Shared returns the address of a Redis that several runtimes or processes of one test share,
// and a key prefix of the test's own: the real Redis of ZASYNC_TEST_REDIS, whose keys under
// the prefix are deleted when t ends, or else a miniredis of the test's own.
func Shared(t testing.TB, tag string) (addr, prefix string) {
	addr, prefix = Addr(), Prefix(tag)
	if addr == "" {
		return miniredis.RunT(t).Addr(), prefix
	}
	DeleteAtCleanup(t, addr, prefix)
	return addr, prefix
}

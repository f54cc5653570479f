package runtime_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/runtime"
)

// BenchmarkPut puts one no-op job at a time, as an enqueue one by one does: its allocations
// per op are the client's cost of a put.
func BenchmarkPut(b *testing.B) {
	addr, prefix := testredis.Shared(b, "putbench")
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	rt, err := runtime.New(runtime.Config{Redis: c, Prefix: prefix, UUID: "put-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	q := rt.Queue("bench")
	ctx := context.Background()
	call := runtime.NewCall("noop")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Put(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}

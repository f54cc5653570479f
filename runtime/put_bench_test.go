package runtime_test

import (
	"context"
	"encoding/json"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/runtime"
)

// BenchmarkPut puts one no-op job at a time, as an enqueue one by one does: its allocations
// per op are the client's cost of a put.
func BenchmarkPut(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	call := runtime.NewCall("noop")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Put(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutParallel measures puts from 16 goroutines at once (compare.sh -P 16), which
// the queue's actor sends in cohorts.
func BenchmarkPutParallel(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	call := runtime.NewCall("noop")
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/goruntime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Put(ctx, call); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPutLarge puts one job at a time whose argument is a 10 KB JSON string
// (compare.sh -p 10240).
func BenchmarkPutLarge(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	call := runtime.NewCall("noop", json.RawMessage(`"`+strings.Repeat("x", 10238)+`"`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Put(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}

// benchQueue is queue "bench" of a runtime over the test Redis, closed with the benchmark.
func benchQueue(b *testing.B) *runtime.Queue {
	addr, prefix := testredis.Shared(b, "putbench")
	c := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { c.Close() })
	rt, err := runtime.New(runtime.Config{Redis: c, Prefix: prefix, UUID: "put-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close() })
	return rt.Queue("bench")
}

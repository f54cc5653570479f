package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// The time of puts and claims never steps back, even when a new measure of the offset to
// Redis TIME is smaller than the last: claims made one after the other keep their order.
func TestEstimatedTimeNeverStepsBack(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := newStore(t, rdb, Options{})
	ctx := context.Background()
	first, err := s.now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What a re-measure on a busy machine can do: the offset comes out 50 ms smaller.
	s.timeMu.Lock()
	s.offset -= 50 * time.Millisecond
	s.timeMu.Unlock()
	prev := first
	for range 3 {
		next, err := s.now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !next.After(prev) {
			t.Fatalf("now gave %s after %s: it stepped back", next.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano))
		}
		prev = next
	}
}

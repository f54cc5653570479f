package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
)

// A transaction that ends without writing leaves no WATCH on its connection. The next user
// of that connection here is a put, through the store's own connection (see ownConn), which
// the pool of one connection gives it: its MULTI … EXEC must commit although a key the
// transaction watched has changed since. Each case ends a transaction in another way: a
// claim that finds nothing to claim, a claim refused (the agent is full), a read that fails.
func TestNoWatchLeftOnThePooledConnection(t *testing.T) {
	addrs := map[string]string{"miniredis": ""}
	if addr := testredis.Addr(); addr != "" {
		addrs["redis"] = addr
	}
	cases := []struct {
		name string
		end  func(ctx context.Context, s *Store, other *redis.Client) error // nil: as expected
	}{
		{"nothing to claim", func(ctx context.Context, s *Store, _ *redis.Client) error {
			_, err := s.Claim(ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 1})
			return err
		}},
		{"claim refused", func(ctx context.Context, s *Store, _ *redis.Client) error {
			_, err := s.Claim(ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 0})
			if err == nil {
				t.Error("a claim for an agent of size 0 succeeded")
			}
			return nil
		}},
		{"read failed", func(ctx context.Context, s *Store, other *redis.Client) error {
			if err := other.Set(ctx, s.k.job("q", "wrong"), "a string", 0).Err(); err != nil {
				return err
			}
			err := s.transact(ctx, "read", []string{s.k.dispatchers("q")}, func(t *txn) (writes, error) {
				_, _, err := s.readJob(ctx, t, persistence.Ref{Queue: "q", ID: "wrong"})
				return nil, err
			})
			if err == nil {
				t.Error("reading a job that is a string: no error")
			}
			return nil
		}},
	}
	for name, addr := range addrs {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				at := addr
				if at == "" {
					at = miniredis.RunT(t).Addr()
				}
				rdb := redis.NewClient(&redis.Options{Addr: at, PoolSize: 1, MaxRetries: -1})
				t.Cleanup(func() { rdb.Close() })
				other := redis.NewClient(&redis.Options{Addr: at})
				t.Cleanup(func() { other.Close() })
				// The test's clock: with one connection, a transaction cannot read Redis TIME.
				s := newStore(t, rdb, Options{Clock: clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))})
				t.Cleanup(func() { s.Close() }) // its own connection back to the pool, for the key cleanup
				s.noScripts = true              // the claim's transaction, which the script falls back to
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
					Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
				if err := s.Register(ctx, "q", "d1", cfg); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Activate(ctx, "q", "d1"); err != nil {
					t.Fatal(err)
				}
				if err := tc.end(ctx, s, other); err != nil {
					t.Fatal(err)
				}
				// Change a watched key (one that exists: miniredis forgets the changes of a key
				// it deletes) through another connection.
				if err := other.HSet(ctx, s.k.dispatchers("q"), "touched", "1").Err(); err != nil {
					t.Fatal(err)
				}
				if err := other.HDel(ctx, s.k.dispatchers("q"), "touched").Err(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Put(ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
					t.Fatalf("put: %v", err)
				}
			})
		}
	}
}

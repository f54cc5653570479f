package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/storetest"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // the outage tests make go-redis log failed dials to stderr
	goleak.VerifyTestMain(m)
}

// quiet discards go-redis's own log lines.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// backend is one Redis the suite runs on.
type backend struct {
	name string
	// client returns a client for one test; it is closed when the test ends.
	client func(t *testing.T) redis.UniversalClient
}

// backends returns miniredis always (through a plain and a Cluster client), the real Redis
// at ZASYNC_TEST_REDIS when it is set, and the real Redis Cluster whose nodes
// ZASYNC_TEST_REDIS_CLUSTER lists (host:port,host:port,…) when it is set: only a real cluster
// refuses a transaction whose keys span slots.
func backends() []backend {
	bs := []backend{{name: "miniredis", client: func(t *testing.T) redis.UniversalClient {
		m := miniredis.RunT(t)
		minis.Store(t, m)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}}, {name: "miniredis-cluster-client", client: func(t *testing.T) redis.UniversalClient {
		// miniredis serves every slot as one node: this runs the Cluster client's code path
		// (WATCH before reads; go-redis checks the watched keys share a slot).
		m := miniredis.RunT(t)
		minis.Store(t, m)
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{m.Addr()}})
		t.Cleanup(func() { c.Close() })
		return c
	}}}
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		bs = append(bs, backend{name: "redis", client: func(t *testing.T) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { c.Close() })
			return c
		}})
	}
	if addrs := os.Getenv("ZASYNC_TEST_REDIS_CLUSTER"); addrs != "" {
		bs = append(bs, backend{name: "redis-cluster", client: func(t *testing.T) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
			t.Cleanup(func() { c.Close() })
			return c
		}})
	}
	return bs
}

// minis are the miniredis servers of the tests that run on one, by test.
var minis sync.Map // *testing.T → *miniredis.Miniredis

// elapse lets d pass for the keys' expiry in test t: miniredis moves its TTLs only when told;
// a real Redis needs nothing.
func elapse(t *testing.T, d time.Duration) {
	if m, ok := minis.Load(t); ok {
		m.(*miniredis.Miniredis).FastForward(d)
	}
}

// shareStore returns a store over s's key space with a client of its own, as another process
// has; it is closed when the test ends.
func shareStore(t *testing.T, ps persistence.Store) persistence.Store {
	s := ps.(*Store)
	var c redis.UniversalClient
	switch rc := s.rdb.(type) {
	case *redis.ClusterClient:
		c = redis.NewClusterClient(rc.Options())
	case *redis.Client:
		c = redis.NewClient(rc.Options())
	default:
		t.Fatalf("shareStore: client %T", s.rdb)
	}
	t.Cleanup(func() { c.Close() })
	retention := s.retention
	if retention == 0 {
		retention = -1 // kept forever, as s keeps them
	}
	other, err := New(c, Options{Prefix: s.k.prefix, Clock: s.clock, Retention: retention})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

// newStore returns a store with a fresh key prefix on c, whose keys are deleted when the
// test ends (never a FLUSHDB: the database may not be ours).
func newStore(t testing.TB, c redis.UniversalClient, opts Options) *Store {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	opts.Prefix = "zasynctest-" + hex.EncodeToString(b)
	s, err := New(c, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		deleteKeys := func(ctx context.Context, node *redis.Client) error {
			iter := node.Scan(ctx, 0, opts.Prefix+":*", 1000).Iterator()
			for iter.Next(ctx) {
				node.Del(ctx, iter.Val()) // one by one: keys of a cluster node span slots
			}
			return iter.Err()
		}
		switch c := c.(type) {
		case *redis.ClusterClient:
			c.ForEachMaster(ctx, deleteKeys)
		case *redis.Client:
			deleteKeys(ctx, c)
		}
		s.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Logf("conformance suite on %s", b.name)
			storetest.Run(t, storetest.Harness{New: func(t *testing.T, clock persistence.Clock) persistence.Store {
				return newStore(t, b.client(t), Options{Clock: clock})
			}, Share: shareStore, Elapse: elapse})
		})
	}
}

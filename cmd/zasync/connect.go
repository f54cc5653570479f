package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisEnv names the environment variable that gives the Redis URL when --redis is empty.
const redisEnv = "ZASYNC_REDIS"

// connection is the Redis a command uses, and how to let it go.
type connection struct {
	client   redis.UniversalClient
	addr     string // for messages
	embedded *miniredis.Miniredis
}

// connect opens the Redis at url (or ZASYNC_REDIS); with neither, an embedded Redis on a
// loopback port, announced on stderr. It checks that the server answers.
func connect(ctx context.Context, url string, stderr io.Writer) (*connection, error) {
	if url == "" {
		url = os.Getenv(redisEnv)
	}
	if url == "" {
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("start the embedded Redis: %w", err)
		}
		fmt.Fprintf(stderr, "zasync: no Redis given: using an embedded one at redis://%s (it keeps nothing after exit)\n", m.Addr())
		return &connection{client: redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2}), addr: m.Addr(), embedded: m}, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, usagef("malformed Redis URL %q: %v", url, err)
	}
	opt.Protocol = 2 // RESP2: go-redis spends noticeable time checking for RESP3 pushes
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %v", opt.Addr, err)
	}
	return &connection{client: c, addr: opt.Addr}, nil
}

// close closes the client, and stops an embedded Redis.
func (c *connection) close() {
	c.client.Close()
	if c.embedded != nil {
		c.embedded.Close()
	}
}

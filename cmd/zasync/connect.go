package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisEnv names the environment variable that gives the Redis URL when --redis is empty.
const redisEnv = "ZASYNC_REDIS"

// redisURLHelp is the flag help shared by every command that talks to Redis.
const redisURLHelp = "Redis URL (default $" + redisEnv + "): redis://[user:password@]host:port[/db], rediss:// for TLS; " +
	"redis+cluster://host:port?addr=host2:port2 for a Cluster; redis://host:port?master_name=NAME&addr=host2:port2 for Sentinel"

// connection is the Redis a command uses, and how to let it go.
type connection struct {
	client   redis.UniversalClient
	url      string // for other commands: the URL this connection was made from
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
		u := "redis://" + m.Addr()
		fmt.Fprintf(stderr, "zasync: no Redis given: using an embedded one at %s (it keeps nothing after exit)\n", u)
		return &connection{client: redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2}), url: u, addr: m.Addr(), embedded: m}, nil
	}
	c, addr, err := dial(url)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %v", addr, err)
	}
	return &connection{client: c, url: url, addr: addr}, nil
}

// connectExisting is connect for commands that read what others stored: an embedded Redis
// would be empty, so a URL is required.
func connectExisting(ctx context.Context, url string, stderr io.Writer) (*connection, error) {
	if url == "" && os.Getenv(redisEnv) == "" {
		return nil, usagef("no Redis given: pass --redis URL or set %s (zasync serve prints the URL of its embedded Redis)", redisEnv)
	}
	return connect(ctx, url, stderr)
}

// dial makes the client a URL names: a single node, a Cluster (scheme redis+cluster or
// rediss+cluster) or a Sentinel-watched master (a master_name parameter). RESP2 throughout:
// go-redis spends noticeable time checking for RESP3 pushes.
func dial(raw string) (redis.UniversalClient, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", usagef("malformed Redis URL %q: %v", raw, err)
	}
	switch {
	case strings.HasSuffix(u.Scheme, "+cluster"):
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, "", usagef("malformed Redis Cluster URL %q: %v", raw, err)
		}
		opt.Protocol = 2
		return redis.NewClusterClient(opt), strings.Join(opt.Addrs, ","), nil
	case u.Query().Has("master_name"):
		opt, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, "", usagef("malformed Redis Sentinel URL %q: %v", raw, err)
		}
		opt.Protocol = 2
		if u.Scheme == "rediss" && opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return redis.NewFailoverClient(opt), "Sentinel " + strings.Join(opt.SentinelAddrs, ","), nil
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, "", usagef("malformed Redis URL %q: %v", raw, err)
	}
	opt.Protocol = 2
	return redis.NewClient(opt), opt.Addr, nil
}

// close closes the client, and stops an embedded Redis.
func (c *connection) close() {
	c.client.Close()
	if c.embedded != nil {
		c.embedded.Close()
	}
}

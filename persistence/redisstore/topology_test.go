package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// A Cluster client's map of slots is reloaded after a failed connection or a reply of a
// cluster that is changing, not after an answer (a missing key, a lost race, an error of the
// command itself) nor a call its caller cancelled.
func TestNeedsReload(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	reply := func(msg string) error {
		m.SetError(msg)
		defer m.SetError("")
		return c.Get(context.Background(), "k").Err()
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("ping: %w", context.DeadlineExceeded), true},
		{reply("CLUSTERDOWN The cluster is down"), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("ERR Error running script: Script attempted to access a non local key in a cluster node"), true},
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{redis.Nil, false},
		{redis.TxFailedErr, false},
		{context.Canceled, false},
		{reply("ERR wrong number of arguments"), false},
		{reply("NOSCRIPT No matching script"), false},
	} {
		if got := needsReload(tc.err); got != tc.want {
			t.Errorf("needsReload(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

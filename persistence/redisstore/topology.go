package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// reloadEvery is how often at most a Cluster client's map of slots is reloaded after errors.
const reloadEvery = 250 * time.Millisecond

// topology reloads a Cluster client's map of slots when a call fails for a reason a failover
// or a migration may be behind: the connection failed or timed out, or the node answered
// that the cluster or the slot is not ready. go-redis reloads it by itself only on MOVED and
// READONLY replies, and every few seconds to minutes otherwise; a master that was killed
// answers neither, so calls kept going to its dead address for tens of seconds after its
// replica took over (long enough for a live dispatcher to be declared dead). A reload is
// asynchronous and cheap; once the cluster has promoted the replica, the next call after a
// reload goes to it.
type topology struct {
	last atomic.Int64 // when the last reload was asked, Unix ns
}

// failed is told of every error of a call; it asks rdb, a Cluster client, to reload its map
// of slots when err calls for it, at most every reloadEvery.
func (t *topology) failed(rdb *redis.ClusterClient, err error) {
	if !needsReload(err) {
		return
	}
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(reloadEvery) || !t.last.CompareAndSwap(last, now) {
		return
	}
	rdb.ReloadState(context.Background())
}

// needsReload reports whether err may come from a map of slots that is out of date: any
// error but a Redis reply, a missing key, a lost optimistic race or a cancelled call; and
// the replies of a cluster that is changing.
func needsReload(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true // the connection failed, timed out, or was closed
	}
	msg := reply.Error()
	for _, p := range []string{"CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "MOVED", "ASK", "READONLY", "LOADING"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return strings.Contains(msg, "non local key")
}

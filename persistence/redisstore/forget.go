package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// ForgetStopped removes what dispatchers stopped for longer than the retention left in q: one
// transaction per dispatcher, which checks again everything that makes it forgettable.
func (s *Store) ForgetStopped(ctx context.Context, q string) ([]string, error) {
	const op = "forget stopped"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	if s.retention <= 0 {
		return nil, nil // completed jobs, and the histories naming them, are kept forever
	}
	recs, err := s.Dispatchers(ctx, q)
	if err != nil {
		return nil, err
	}
	agents, err := s.agentsOf(ctx, q)
	if err != nil {
		return nil, s.fail(op, err)
	}
	now, err := s.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-s.retention)
	agentsBy := map[string][]persistence.Owner{} // dispatcher UUID → its agents
	for _, o := range agents {
		agentsBy[o.Dispatcher] = append(agentsBy[o.Dispatcher], o)
	}
	// Candidates: deactivated records not pinged since the cutoff, and agents whose
	// dispatcher has no record (removed by hand, or by an older version).
	var uuids []string
	recorded := map[string]bool{}
	for _, d := range recs {
		recorded[d.UUID] = true
		if !d.IsActivated() && !d.LastPing.IsZero() && d.LastPing.Before(cutoff) {
			uuids = append(uuids, d.UUID)
		}
	}
	for u := range agentsBy {
		if !recorded[u] {
			uuids = append(uuids, u)
		}
	}
	slices.Sort(uuids)
	var forgotten []string
	var errs []error
	for _, u := range uuids {
		owners := agentsBy[u]
		ok, err := s.forget(ctx, q, u, owners, cutoff)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			forgotten = append(forgotten, u)
		}
	}
	return forgotten, errors.Join(errs...)
}

// forget removes dispatcher uuid of q, whose agents are owners, if it is still forgettable at
// cutoff; ok is false, and nothing is changed, when it is not (or when it changed meanwhile:
// a later sweep looks again).
func (s *Store) forget(ctx context.Context, q, uuid string, owners []persistence.Owner, cutoff time.Time) (ok bool, _ error) {
	const op = "forget stopped"
	watch := []string{s.k.dispatchers(q), s.k.ping(q, uuid), s.k.agents(q)}
	for _, o := range owners {
		watch = append(watch, s.k.agent(q, o), s.k.completed(q, o))
	}
	err := s.transact(ctx, op, watch, func(t *txn) (writes, error) {
		ok = false
		var rec, ping *redis.StringCmd
		var names *redis.StringSliceCmd
		held := make([]*redis.IntCmd, len(owners))
		last := make([]*redis.ZSliceCmd, len(owners))
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			rec, ping, names = p.HGet(ctx, s.k.dispatchers(q), uuid), p.Get(ctx, s.k.ping(q, uuid)), p.SMembers(ctx, s.k.agents(q))
			for i, o := range owners {
				held[i], last[i] = p.ZCard(ctx, s.k.agent(q, o)), p.ZRevRangeWithScores(ctx, s.k.completed(q, o), 0, 0)
			}
		}); err != nil {
			return nil, err
		}
		// The agents watched must be all of its agents: one that claimed since it was listed
		// is for a later sweep.
		var mine []string
		for _, n := range names.Val() {
			if strings.HasPrefix(n, uuid+"/") {
				mine = append(mine, n)
			}
		}
		if len(mine) != len(owners) {
			return nil, nil
		}
		for _, o := range owners {
			if !slices.Contains(mine, o.String()) {
				return nil, nil
			}
		}
		if rec.Val() == "" && ping.Val() == "" && len(owners) == 0 {
			return nil, nil // nothing left to forget
		}
		if rec.Val() != "" {
			d, err := decodeDispatcher(q, uuid, rec.Val(), ping.Val())
			if err != nil {
				return nil, err
			}
			// Activated (alive or not: a dead one is buried first), or never known alive.
			if d.IsActivated() || d.LastPing.IsZero() {
				return nil, nil
			}
		}
		if ping.Val() != "" {
			us, err := strconv.ParseInt(ping.Val(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: ping of dispatcher %s in %s: %q", persistence.ErrCorrupt, uuid, q, ping.Val())
			}
			if !fromMicros(us).Before(cutoff) {
				return nil, nil
			}
		}
		for i := range owners {
			if held[i].Val() > 0 {
				return nil, nil
			}
			if z := last[i].Val(); len(z) > 0 && !fromMicros(int64(z[0].Score)).Before(cutoff) {
				return nil, nil
			}
		}
		ok = true
		return func(p redis.Pipeliner) error {
			p.HDel(ctx, s.k.dispatchers(q), uuid)
			p.Del(ctx, s.k.ping(q, uuid))
			for _, o := range owners {
				p.SRem(ctx, s.k.agents(q), o.String())
				p.Del(ctx, s.k.completed(q, o), s.k.parked(q, o))
			}
			return nil
		}, nil
	})
	if err != nil {
		return false, err
	}
	return ok, nil
}

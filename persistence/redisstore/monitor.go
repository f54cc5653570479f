package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// Completed lists the ids an agent completed in [since, before), newest first.
func (s *Store) Completed(ctx context.Context, q string, o persistence.Owner, since, before time.Time, limit int) ([]string, error) {
	const op = "completed"
	if err := validAgent(op, q, o); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("%s: %w: negative limit", op, persistence.ErrInvalid)
	}
	if limit == 0 {
		limit = 100
	}
	rng := &redis.ZRangeBy{Min: "-inf", Max: "+inf", Count: int64(limit)}
	if !since.IsZero() {
		rng.Min = strconv.FormatInt(micros(since), 10)
	}
	if !before.IsZero() {
		rng.Max = "(" + strconv.FormatInt(micros(before), 10)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.k.completed(q, o), rng).Result()
	return ids, s.fail(op, err)
}

// Queues lists the queues used with this key prefix.
func (s *Store) Queues(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, s.k.queues()).Result()
	if err != nil {
		return nil, s.fail("queues", err)
	}
	slices.Sort(names)
	return names, nil
}

// Stats counts a queue's jobs by where they wait: O(log n) per count, plus one count per
// agent that has claimed in the queue.
func (s *Store) Stats(ctx context.Context, q string) (persistence.QueueStats, error) {
	const op = "stats"
	if err := validQueue(op, q); err != nil {
		return persistence.QueueStats{}, err
	}
	now, err := s.now(ctx)
	if err != nil {
		return persistence.QueueStats{}, err
	}
	agents, err := s.agentsOf(ctx, q)
	if err != nil {
		return persistence.QueueStats{}, s.fail(op, err)
	}
	nowArg := strconv.FormatInt(s.dueUntil(now), 10)
	var due, scheduled, putback *redis.IntCmd
	held := make([]*redis.IntCmd, len(agents))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		due = p.ZCount(ctx, s.k.pending(q), "-inf", nowArg)
		scheduled = p.ZCount(ctx, s.k.pending(q), "("+nowArg, "+inf")
		putback = p.LLen(ctx, s.k.putback(q))
		for i, o := range agents {
			held[i] = p.ZCard(ctx, s.k.agent(q, o))
		}
		return nil
	}); err != nil {
		return persistence.QueueStats{}, s.fail(op, err)
	}
	st := persistence.QueueStats{Due: due.Val() + putback.Val(), Scheduled: scheduled.Val(), PutBack: putback.Val()}
	for _, h := range held {
		st.Held += h.Val()
	}
	return st, nil
}

package redisstore

import (
	"context"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// trimBatch bounds how many agents' histories one pipeline of TrimCompleted trims: a queue
// claimed by many short-lived dispatchers within the retention lists many agents.
const trimBatch = 500

// TrimCompleted removes from the completed history of every agent listed in q the entries
// older than the retention: one ZREMRANGEBYSCORE per agent, pipelined. An entry is scored by
// its job's completion time and the record expires one retention after it, both by the
// server's clock, so the cut-off, taken from a fresh reading of that clock, removes only
// entries whose records are gone. Each command stands alone and removes by score, so a lost
// reply, a retry, a late run by a process that was frozen (whose cut-off is older) or a
// slot that moves mid-way removes nothing it should not; what one run leaves, the next takes.
func (s *Store) TrimCompleted(ctx context.Context, q string) (int64, error) {
	const op = "trim completed"
	if err := validQueue(op, q); err != nil {
		return 0, err
	}
	if s.retention <= 0 {
		return 0, nil // completed jobs are kept forever, and so are the histories naming them
	}
	agents, err := s.agentsOf(ctx, q)
	if err != nil {
		return 0, s.fail(op, err)
	}
	if len(agents) == 0 {
		return 0, nil
	}
	now, err := s.serverNow(ctx)
	if err != nil {
		return 0, err
	}
	// Exclusive, as a completion's own trim: an entry exactly one retention old is kept.
	cutoff := "(" + strconv.FormatInt(micros(now.Add(-s.retention)), 10)
	// The index of failures, as the histories: it names only jobs whose records are kept.
	if err := s.rdb.ZRemRangeByScore(ctx, s.k.failed(q), "-inf", cutoff).Err(); err != nil {
		return 0, s.fail(op, err)
	}
	var removed int64
	for batch := range slices.Chunk(agents, trimBatch) {
		cmds := make([]*redis.IntCmd, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, o := range batch {
				cmds[i] = p.ZRemRangeByScore(ctx, s.k.completed(q, o), "-inf", cutoff)
			}
			return nil
		})
		for _, c := range cmds {
			removed += c.Val()
		}
		if err != nil {
			return removed, s.fail(op, err)
		}
	}
	return removed, nil
}

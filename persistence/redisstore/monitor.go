package redisstore

import (
	"cmp"
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
	until := s.dueUntil(now)
	// One snapshot: the counts are read in one MULTI with the set of agents they are read
	// for, again until that set is the one read before (it changes only when an agent claims
	// for the first time), so that a claim by a new agent between the two reads (the job no
	// longer pending, its agent's count not read) cannot make a busy queue look empty. (Not
	// a WATCH: miniredis counts every SADD of a member already there as a change.)
	agents, err := s.agentsOf(ctx, q)
	if err != nil {
		return persistence.QueueStats{}, s.fail(op, err)
	}
	for try := 1; ; try++ {
		if s.beforeExec != nil {
			s.beforeExec("stats")
		}
		var putback *redis.IntCmd
		var card, due []*redis.IntCmd
		var paused *redis.BoolCmd
		var names *redis.StringSliceCmd
		held := make([]*redis.IntCmd, len(agents))
		if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			paused = p.HExists(ctx, s.k.dispatchers(q), pausedField)
			card, due = s.pendingCounts(ctx, p, q, until) // every priority's
			putback = p.LLen(ctx, s.k.putback(q))
			for i, o := range agents {
				held[i] = p.ZCard(ctx, s.k.agent(q, o))
			}
			names = p.SMembers(ctx, s.k.agents(q))
			return nil
		}); err != nil {
			return persistence.QueueStats{}, s.fail(op, err)
		}
		now := owners(names.Val())
		if !slices.Equal(now, agents) && try < statsTries {
			agents = now
			continue
		}
		st := persistence.QueueStats{Due: putback.Val(), PutBack: putback.Val(), Paused: paused.Val()}
		for i := range card {
			st.Due += due[i].Val()
			st.Scheduled += card[i].Val() - due[i].Val()
		}
		for _, h := range held {
			st.Held += h.Val()
		}
		return st, nil
	}
}

// statsTries bounds Stats's reads while new agents keep appearing: the last is answered.
const statsTries = 10

// Agents lists every agent that has claimed in a queue, ordered by dispatcher then name.
func (s *Store) Agents(ctx context.Context, q string) ([]persistence.Owner, error) {
	const op = "agents"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	all, err := s.agentsOf(ctx, q)
	if err != nil {
		return nil, s.fail(op, err)
	}
	slices.SortFunc(all, func(a, b persistence.Owner) int {
		return cmp.Or(cmp.Compare(a.Dispatcher, b.Dispatcher), cmp.Compare(a.Agent, b.Agent))
	})
	return all, nil
}

// historyRange turns [since, before) into the bounds of a ZRANGEBYSCORE on a history.
func historyRange(since, before time.Time) (lo, hi string) {
	lo, hi = "-inf", "+inf"
	if !since.IsZero() {
		lo = strconv.FormatInt(micros(since), 10)
	}
	if !before.IsZero() {
		hi = "(" + strconv.FormatInt(micros(before), 10)
	}
	return lo, hi
}

// CompletedPage lists a window of an agent's completed history with the completion times,
// newest first: one ZREVRANGEBYSCORE … WITHSCORES LIMIT.
func (s *Store) CompletedPage(ctx context.Context, q string, o persistence.Owner, since, before time.Time, offset, limit int) ([]persistence.Completion, error) {
	const op = "completed page"
	if err := validAgent(op, q, o); err != nil {
		return nil, err
	}
	return s.page(ctx, op, s.k.completed(q, o), since, before, offset, limit)
}

// FailedPage lists a window of a queue's index of failures, newest first.
func (s *Store) FailedPage(ctx context.Context, q string, since, before time.Time, offset, limit int) ([]persistence.Completion, error) {
	const op = "failed page"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	return s.page(ctx, op, s.k.failed(q), since, before, offset, limit)
}

// CountFailed counts a window of a queue's index of failures: one ZCOUNT.
func (s *Store) CountFailed(ctx context.Context, q string, since, before time.Time) (int64, error) {
	const op = "count failed"
	if err := validQueue(op, q); err != nil {
		return 0, err
	}
	lo, hi := historyRange(since, before)
	n, err := s.rdb.ZCount(ctx, s.k.failed(q), lo, hi).Result()
	return n, s.fail(op, err)
}

// page reads a window of a zset of completions (a history, the index of failures) newest
// first.
func (s *Store) page(ctx context.Context, op, key string, since, before time.Time, offset, limit int) ([]persistence.Completion, error) {
	if offset < 0 || limit < 1 || limit > persistence.MaxPage {
		return nil, fmt.Errorf("%s: %w: offset %d must not be negative, limit %d must be 1 to %d", op, persistence.ErrInvalid, offset, limit, persistence.MaxPage)
	}
	lo, hi := historyRange(since, before)
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key,
		&redis.ZRangeBy{Min: lo, Max: hi, Offset: int64(offset), Count: int64(limit)}).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]persistence.Completion, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = persistence.Completion{ID: id, At: fromMicros(int64(z.Score))}
	}
	return out, nil
}

// CountCompleted counts a window of an agent's completed history: one ZCOUNT.
func (s *Store) CountCompleted(ctx context.Context, q string, o persistence.Owner, since, before time.Time) (int64, error) {
	const op = "count completed"
	if err := validAgent(op, q, o); err != nil {
		return 0, err
	}
	lo, hi := historyRange(since, before)
	n, err := s.rdb.ZCount(ctx, s.k.completed(q, o), lo, hi).Result()
	return n, s.fail(op, err)
}

// Throughput counts a queue's completions, and its failures, in n windows of step from since.
func (s *Store) Throughput(ctx context.Context, q string, since time.Time, step time.Duration, n int) ([]int64, []int64, error) {
	const op = "throughput"
	if err := validQueue(op, q); err != nil {
		return nil, nil, err
	}
	switch {
	case n < 1 || n > persistence.MaxThroughputWindows:
		return nil, nil, fmt.Errorf("%s: %w: %d windows, want 1 to %d", op, persistence.ErrInvalid, n, persistence.MaxThroughputWindows)
	case step < time.Microsecond:
		return nil, nil, fmt.Errorf("%s: %w: window of %s", op, persistence.ErrInvalid, step)
	}
	if err := persistence.ValidateTime(op+": since", since); err != nil {
		return nil, nil, err
	}
	agents, err := s.agentsOf(ctx, q)
	if err != nil {
		return nil, nil, s.fail(op, err)
	}
	completed, failed := make([]int64, n), make([]int64, n)
	cmds := make([]*redis.IntCmd, 0, n*(len(agents)+1))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			lo, hi := historyRange(since.Add(time.Duration(i)*step), since.Add(time.Duration(i+1)*step))
			cmds = append(cmds, p.ZCount(ctx, s.k.failed(q), lo, hi))
			for _, o := range agents {
				cmds = append(cmds, p.ZCount(ctx, s.k.completed(q, o), lo, hi))
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, s.fail(op, err)
	}
	per := len(agents) + 1
	for k, c := range cmds {
		if k%per == 0 {
			failed[k/per] = c.Val()
		} else {
			completed[k/per] += c.Val()
		}
	}
	return completed, failed, nil
}

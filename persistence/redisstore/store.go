package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// DefaultPrefix starts every key unless Options.Prefix says otherwise.
const DefaultPrefix = "zasync"

// DefaultRetention is how long completed jobs are kept when Options.Retention is 0.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultMaxTxRetries is how many times a transaction that lost a race is retried before the
// store gives up with persistence.ErrConflict, when Options.MaxTxRetries is 0.
const DefaultMaxTxRetries = 20

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Prefix starts every key. Default "zasync". It may not contain '{', '}' or spaces.
	Prefix string
	// Clock, if set, is the store's time for everything (tests). By default the store uses
	// the Redis server's TIME: read fresh for pings, activation and death, and estimated from
	// the local clock plus the last measured offset (re-measured every second) for puts and
	// claims, which then cost no extra round trip.
	Clock persistence.Clock
	// Retention is how long completed jobs and agents' completed histories are kept.
	// Default 7 days; negative keeps them forever.
	Retention time.Duration
	// MaxTxRetries is how many times a transaction that lost a race to another client is
	// retried (re-reading and re-checking each time) before persistence.ErrConflict.
	// Default 20.
	MaxTxRetries int
}

// Store is a persistence.Store over a go-redis UniversalClient: a single node, Sentinel or
// Cluster. It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	cluster    bool // rdb is a Cluster client: WATCH before anything else in a transaction
	k          keys
	clock      persistence.Clock
	retention  time.Duration
	maxRetries int

	timeMu     sync.Mutex
	offset     time.Duration // Redis TIME minus local time, at the last measure
	measuredAt time.Time     // local time of the last measure; zero before the first
	lastNow    time.Time     // the last time now returned: the next one is later

	known   sync.Map // queue names already added to the queues set by this store
	scripts sync.Map // *redis.Script → true once the server has run it (see runScripts)
	own     ownConn
	ownFor  time.Duration // ownConnFor, but for tests
	ownIdle time.Duration // ownConnIdle, but for tests

	heads heads    // the jobs each queue's next claim declares (claimScript)
	topo  topology // a Cluster client's map of slots, reloaded after errors
	// annotated holds the keys of the jobs annotated through this store whose commit has
	// not been sent since: the commit declares their annotations' keys (commitCall).
	annotated sync.Map

	tickMu   sync.Mutex
	lastTick int64 // the last queue position given to a due job, µs (see tick)

	// beforeExec, when set (tests only), runs between a transaction's reads and its EXEC.
	beforeExec func(op string)
	// noScripts (tests only) makes claims and commits use their optimistic transactions
	// only, never the scripts of their common case (scripts.go), so that both are tested.
	noScripts bool
}

var _ persistence.Store = (*Store)(nil)

// New returns a Store over rdb. It does no I/O; the first call reaches Redis.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", persistence.ErrInvalid)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{} \t\r\n") {
		return nil, fmt.Errorf("%w: key prefix %q may not contain braces or spaces", persistence.ErrInvalid, opts.Prefix)
	}
	switch {
	case opts.Retention == 0:
		opts.Retention = DefaultRetention
	case opts.Retention < 0:
		opts.Retention = 0
	}
	if opts.MaxTxRetries <= 0 {
		opts.MaxTxRetries = DefaultMaxTxRetries
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, cluster: cluster, k: keys{opts.Prefix}, clock: opts.Clock, retention: opts.Retention,
		maxRetries: opts.MaxTxRetries, ownFor: ownConnFor, ownIdle: ownConnIdle}, nil
}

// Close releases the store's own connection (see use); the client is not the store's to close.
func (s *Store) Close() error {
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	s.own.closed = true
	if s.own.conn != nil {
		s.own.conn.Close()
		s.own.conn = nil
	}
	return nil
}

// ownConn is a connection of the store's own, for one call at a time, when the client is a
// single node's: go-redis checks a connection's health with a system call each time it takes
// one from its pool, which costs a put or a batch several percent of its time. This one is
// taken from the pool once, and given back and taken again every ownConnFor: go-redis
// (RESP3) also peeks with a system call before every command on a connection that has not
// been back in its pool for five seconds, so a connection kept for good would cost more
// than the pool.
//
// The pool's check is also what keeps a connection the server has closed (Redis restarted)
// from being used: a write sent on it fails with EOF, and nothing may send it again, since
// nothing tells that it was not applied. So a connection left unused for ownConnIdle goes
// back to the pool too, and the call takes a checked one: a restart leaves the connection
// unused for longer than that, and a busy store, whose calls follow one another, keeps it.
type ownConn struct {
	mu     sync.Mutex
	conn   *redis.Conn
	taken  time.Time // when conn was taken from the pool
	used   time.Time // when conn's last call ended
	closed bool
}

// ownConnFor is how long the store keeps its own connection before giving it back to the
// pool and taking one again (see ownConn).
const ownConnFor = 4 * time.Second

// ownConnIdle is how long the store's own connection may stay unused before a call takes a
// checked one from the pool instead (see ownConn).
const ownConnIdle = 5 * time.Millisecond

// use runs call through the store's own connection when it is free, else through the client.
// A connection that failed (not a Redis error reply) is dropped; the next call takes a new one.
func (s *Store) use(call func(c redis.Cmdable) error) error {
	client, ok := s.rdb.(*redis.Client)
	if !ok || !s.own.mu.TryLock() {
		return call(s.rdb)
	}
	defer s.own.mu.Unlock()
	if s.own.closed {
		return call(s.rdb)
	}
	now := time.Now()
	if s.own.conn != nil && (now.Sub(s.own.taken) >= s.ownFor || now.Sub(s.own.used) >= s.ownIdle) {
		s.own.conn.Close() // back to the pool, which checks it when it is taken again
		s.own.conn = nil
	}
	if s.own.conn == nil {
		s.own.conn, s.own.taken = client.Conn(), now
	}
	err := call(s.own.conn)
	s.own.used = time.Now()
	var reply redis.Error
	if err != nil && !errors.As(err, &reply) && !errors.Is(err, redis.Nil) {
		s.own.conn.Close()
		s.own.conn = nil
	}
	return err
}

// Now returns the store's time: Redis TIME, or the injected clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) { return s.serverNow(ctx) }

// now returns the time for puts and claims: the injected clock, or the local clock corrected
// by the offset to Redis TIME measured at most a second ago, always later than the time it
// returned before (see later).
func (s *Store) now(ctx context.Context) (time.Time, error) {
	if s.clock != nil {
		return s.clock.Now().UTC(), nil
	}
	s.timeMu.Lock()
	if !s.measuredAt.IsZero() && time.Since(s.measuredAt) < time.Second {
		t := s.later(time.Now().Add(s.offset).UTC().Truncate(time.Microsecond))
		s.timeMu.Unlock()
		return t, nil
	}
	s.timeMu.Unlock()
	t, err := s.serverNow(ctx)
	if err != nil {
		return time.Time{}, err
	}
	s.timeMu.Lock()
	defer s.timeMu.Unlock()
	return s.later(t), nil
}

// later returns t, or a microsecond after the time now returned last if t is not after it;
// s.timeMu is held. Each measure of the offset is off by up to half its round trip, so a new
// one may step the estimate back by as much, on a busy machine by milliseconds. An agent's
// jobs are ordered by their claims' times, and a stopped dispatcher hands them back in that
// order: two claims made one after the other must not swap.
func (s *Store) later(t time.Time) time.Time {
	if !t.After(s.lastNow) {
		t = s.lastNow.Add(time.Microsecond)
	}
	s.lastNow = t
	return t
}

// serverNow reads Redis TIME (or the injected clock) and re-measures the offset.
func (s *Store) serverNow(ctx context.Context) (time.Time, error) {
	if s.clock != nil {
		return s.clock.Now().UTC(), nil
	}
	before := time.Now()
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, s.fail("time", err)
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	s.timeMu.Lock()
	s.offset, s.measuredAt = t.Sub(mid), after
	s.timeMu.Unlock()
	return t.UTC().Truncate(time.Microsecond), nil
}

// fail turns an error met during op into one of persistence's: domain errors pass through
// with op as context; a cancelled context or a passed deadline is ErrUnavailable and the
// context error both; every other error of the backend becomes persistence.ErrUnavailable
// with its text (no go-redis error escapes).
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if isDomain(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		s.topo.failed(c, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		// A socket deadline comes from the context's (or from the client's read timeout): the
		// read can time out a moment before the context says it is done.
		return fmt.Errorf("%s: %w: %w", op, persistence.ErrUnavailable, contextErr(err))
	}
	return fmt.Errorf("%s: %w: %s", op, persistence.ErrUnavailable, err.Error())
}

func contextErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return context.Canceled
	}
	return context.DeadlineExceeded
}

// isDomain reports errors made by this package from persistence's sentinels and types.
func isDomain(err error) bool {
	var t interface{ FailureType() string }
	return errors.As(err, &t)
}

// writes queues a transaction's writes; it runs inside MULTI … EXEC.
type writes func(p redis.Pipeliner) error

// reader sends reads in one round trip: a plain client, or a transaction (txn).
type reader interface {
	pipelined(ctx context.Context, fn func(p redis.Pipeliner)) error
}

// plain is a reader outside any transaction.
type plain struct{ c redis.Cmdable }

func (r plain) pipelined(ctx context.Context, fn func(p redis.Pipeliner)) error {
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error { fn(p); return nil })
	return pipelineErr(err)
}

// txn is one attempt of an optimistic transaction. Its reads go through pipelined, which
// sends the keys still to WATCH in the same round trip, ahead of the reads: on a single node
// a transaction costs one round trip for WATCH and reads, one for MULTI … EXEC. (A Cluster
// client must WATCH on its own first, to find the node of the slot.)
type txn struct {
	tx      *redis.Tx
	pending []string // keys to WATCH with the next read
	// armed: a WATCH went with the reads and no EXEC has released it since. go-redis only
	// releases the WATCHes it sent itself (Tx.Watch); this one is the transaction's to
	// release, or the connection goes back to the pool still watching, and the next user
	// of that connection fails its MULTI … EXEC whenever one of these keys has changed.
	armed bool
}

// watch adds keys to WATCH; they are sent with the next read, before it.
func (t *txn) watch(keys ...string) { t.pending = append(t.pending, keys...) }

func (t *txn) pipelined(ctx context.Context, fn func(p redis.Pipeliner)) error {
	_, err := t.tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(t.pending) > 0 {
			args := make([]any, 0, len(t.pending)+1)
			args = append(args, "WATCH")
			for _, k := range t.pending {
				args = append(args, k)
			}
			p.Do(ctx, args...)
			t.pending = nil
			t.armed = true
		}
		fn(p)
		return nil
	})
	return pipelineErr(err)
}

// release sends UNWATCH when a WATCH of the reads is still armed: the transaction wrote
// nothing, failed before its EXEC, or its EXEC may not have run. An UNWATCH that cannot be
// sent fails on a broken connection, which go-redis drops instead of giving it back to the
// pool: either way no WATCH outlives the transaction.
func (t *txn) release(ctx context.Context) {
	if t.armed {
		t.tx.Unwatch(ctx)
		t.armed = false
	}
}

// transact runs one optimistic transaction: WATCH watch, then read (its reads, made through
// the txn, see what EXEC will be checked against; it may WATCH more keys), check, and return
// the writes, which run in MULTI … EXEC. A transaction that lost a race is re-run, reads and
// checks included, up to maxRetries times with a short random backoff, then fails with
// ErrConflict. read returning nil writes ends the transaction without writing.
func (s *Store) transact(ctx context.Context, op string, watch []string, read func(t *txn) (writes, error)) error {
	return s.transactN(ctx, op, s.maxRetries, watch, read)
}

// transactN is transact giving up after tries lost races.
func (s *Store) transactN(ctx context.Context, op string, tries int, watch []string, read func(t *txn) (writes, error)) error {
	for attempt := 1; ; attempt++ {
		t := &txn{}
		var first []string // what rdb.Watch sends on its own: only a Cluster client needs it
		if s.cluster {
			first = watch
		} else {
			t.pending = append(t.pending, watch...)
		}
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			t.tx = tx
			defer t.release(ctx)
			w, err := read(t)
			if err != nil || w == nil {
				return err
			}
			if len(t.pending) > 0 { // nothing was read: the keys must still be watched
				if err := tx.Watch(ctx, t.pending...).Err(); err != nil {
					return err
				}
			}
			if s.beforeExec != nil {
				s.beforeExec(op)
			}
			_, err = tx.TxPipelined(ctx, w)
			if err == nil || errors.Is(err, redis.TxFailedErr) || redis.IsExecAbortError(err) {
				t.armed = false // EXEC ran, and released every WATCH
			}
			return err
		}, first...)
		if !errors.Is(err, redis.TxFailedErr) {
			return s.fail(op, err)
		}
		if attempt >= tries {
			return fmt.Errorf("%s: %w after %d attempts", op, persistence.ErrConflict, attempt)
		}
		// Back off a little, more with each lost race, so that racing clients spread out.
		d := time.Duration(rand.Int64N(int64(attempt)*int64(200*time.Microsecond) + 1))
		select {
		case <-ctx.Done():
			return s.fail(op, ctx.Err())
		case <-time.After(d):
		}
	}
}

// pipelineErr drops redis.Nil (a missing key or field is an answer, not an error) from the
// error of a read pipeline.
func pipelineErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// rememberQueue adds q to the set of queues once per store.
func (s *Store) rememberQueue(ctx context.Context, q string) error {
	if _, ok := s.known.Load(q); ok {
		return nil
	}
	if err := s.rdb.SAdd(ctx, s.k.queues(), q).Err(); err != nil {
		return s.fail("remember queue", err)
	}
	s.known.Store(q, true)
	return nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

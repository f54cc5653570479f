// Package zasynctest is a kit for testing a program that uses zasync: a runtime on an
// embedded Redis of the test's own in one call, a clock the test moves, every due job run now,
// and assertions on the jobs the program put.
//
//	func TestSignup(t *testing.T) {
//		k := zasynctest.New(t, runtime.Config{})
//		send, _ := runtime.Register(k.Runtime, "email.send", sendEmail)
//		signup(t.Context(), send, "ann@example.com") // the code under test puts a job
//		k.RequirePut("email.send", Email{To: "ann@example.com"})
//		k.RunDue() // runs it, and its callbacks, and anything they put that is due
//	}
//
// The jobs run in the runtime's own dispatcher, as in production, and RunDue returns once
// none is left due, running or with callbacks to run: from the test's side, they ran inline.
package zasynctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/runtime"
)

// Kit is a zasync runtime for one test, with its Redis and its clock.
type Kit struct {
	// Runtime is the runtime under test: register handlers on it and give it to the code
	// under test. RunDue starts it; the test's end stops and closes it.
	Runtime *runtime.Runtime
	// Redis is the embedded Redis, nil when the test gave its own client.
	Redis *miniredis.Miniredis
	// Timeout bounds RunDue's wait. Default 30 seconds.
	Timeout time.Duration

	t       testing.TB
	clock   *Clock
	queues  []string
	mu      sync.Mutex
	run     bool
	counted int // the program's completed jobs when RunDue last returned
}

// Defaults the kit gives to the zero fields of the Config given to New.
const (
	PollInterval = 10 * time.Millisecond // a job put or made due is claimed at once
	PingInterval = 20 * time.Millisecond // a dispatcher pings again soon after Advance
)

// New returns a Kit whose runtime has cfg, with these defaults for its zero fields: an embedded
// Redis (miniredis) of the test's own, a key prefix and a dispatcher UUID of the test's own
// (no uuid.txt is ever written), the kit's Clock, and the PollInterval and PingInterval
// above. Its runtime is not started: RunDue starts it, or the test does. When the test ends,
// the runtime is stopped and closed and the Redis stopped.
func New(t testing.TB, cfg runtime.Config) *Kit {
	t.Helper()
	k := &Kit{t: t, Timeout: 30 * time.Second}
	if cfg.Redis == nil {
		k.Redis = miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: k.Redis.Addr()})
		t.Cleanup(func() { c.Close() })
		cfg.Redis = c
	}
	tag := randomTag()
	if cfg.Prefix == "" {
		cfg.Prefix = "zasynctest-" + tag
	}
	if cfg.UUID == "" {
		cfg.UUID = "zasynctest-" + tag
	}
	if cfg.Clock == nil {
		k.clock = NewClock()
		cfg.Clock = k.clock
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = PollInterval
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = PingInterval
	}
	for _, q := range cfg.Queues {
		k.queues = append(k.queues, q.Name)
	}
	if len(k.queues) == 0 {
		k.queues = []string{runtime.DefaultQueue}
	}
	rt, err := runtime.New(cfg)
	if err != nil {
		t.Fatalf("zasynctest: %v", err)
	}
	k.Runtime = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		k.mu.Lock()
		started := k.run
		k.mu.Unlock()
		if started {
			if err := rt.Stop(ctx); err != nil {
				t.Errorf("zasynctest: stop: %v", err)
			}
		}
		if err := rt.Close(); err != nil {
			t.Errorf("zasynctest: close: %v", err)
		}
	})
	return k
}

func randomTag() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Now is the time of the kit's clock: the time jobs are scheduled and claimed by.
func (k *Kit) Now() time.Time {
	k.t.Helper()
	return k.clockOrFail().Now()
}

// Advance moves the kit's clock forward by d, so that jobs scheduled within d are due (run
// them with RunDue), and returns the new time.
func (k *Kit) Advance(d time.Duration) time.Time {
	k.t.Helper()
	if d < 0 {
		k.t.Fatalf("zasynctest: Advance(%s): time only moves forward", d)
	}
	return k.clockOrFail().Advance(d)
}

func (k *Kit) clockOrFail() *Clock {
	k.t.Helper()
	if k.clock == nil {
		k.t.Fatal("zasynctest: the test gave its own Config.Clock: move that one")
	}
	return k.clock
}

// ctx is a context for one of the kit's calls, bounded by Timeout.
func (k *Kit) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), k.Timeout)
}

// RunDue starts the runtime if it is not started, and waits until no job of its queues is
// due, held by an agent (running, waiting on another job, or with callbacks to run) or put
// back after an interruption: every job due now has run, with its callbacks and the
// composites and jobs it made, which were due too. Jobs scheduled later stay (Advance the
// clock, then RunDue again). It returns how many of the program's jobs (composites included,
// zasync's own steps not) completed since the last RunDue returned, or since New: a started
// runtime may run some before the call. It fails the test, saying what is left, after
// Timeout.
func (k *Kit) RunDue() int {
	k.t.Helper()
	ctx, cancel := k.ctx()
	defer cancel()
	k.mu.Lock()
	if !k.run {
		if err := k.Runtime.Start(ctx); err != nil {
			k.mu.Unlock()
			k.t.Fatalf("zasynctest: start: %v", err)
		}
		k.run = true
	}
	k.mu.Unlock()
	deadline := time.Now().Add(k.Timeout - k.Timeout/10) // leaves time to say what is left
	for {
		left, err := k.busy(ctx)
		if err != nil {
			k.t.Fatalf("zasynctest: RunDue: %v", err)
		}
		if left == "" {
			n := k.completed(ctx)
			k.mu.Lock()
			defer k.mu.Unlock()
			done := n - k.counted
			k.counted = n
			return done
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("zasynctest: RunDue: not done after %s: %s", k.Timeout, left)
		}
		time.Sleep(5 * time.Millisecond) // polling the queues' counts, with a deadline
	}
}

// busy says what is left to run in the kit's queues, "" when nothing is.
func (k *Kit) busy(ctx context.Context) (string, error) {
	var left []string
	for _, q := range k.queues {
		st, err := k.Runtime.Queue(q).Stats(ctx)
		if err != nil {
			return "", err
		}
		if n := st.Due + st.PutBack + st.Held; n > 0 {
			left = append(left, fmt.Sprintf("queue %s has %d due, %d put back, %d held", q, st.Due, st.PutBack, st.Held))
		}
	}
	return strings.Join(left, "; "), nil
}

// completed counts the program's completed jobs in the kit's queues: its composites count,
// zasync's own steps ("zasync.*": recoveries, a composite's next step) do not.
func (k *Kit) completed(ctx context.Context) int {
	k.t.Helper()
	n := 0
	for _, c := range []struct {
		glob string
		sign int
	}{{"", 1}, {"zasync.*", -1}, {actors.HandlerSerial, 1}, {actors.HandlerParallel, 1}} {
		got, err := k.Runtime.Count(ctx, runtime.Query{States: []runtime.State{runtime.StateCompleted}, Queue: k.queueGlob(), Callable: c.glob})
		if err != nil {
			k.t.Fatalf("zasynctest: count completed jobs: %v", err)
		}
		n += c.sign * got
	}
	return n
}

// queueGlob matches the kit's queues ("" for all when it serves more than one).
func (k *Kit) queueGlob() string {
	if len(k.queues) == 1 {
		return k.queues[0]
	}
	return ""
}

// Put is a job found by Jobs: its record as read, with its handle.
type Put struct {
	Job    *runtime.Job
	Record *runtime.JobRecord
}

// Jobs lists the jobs put with the handler named, in every queue and state (pending,
// scheduled, running, with callbacks to run, or completed): pending ones first, in claim
// order, completed ones last.
func (k *Kit) Jobs(handler string) []Put {
	k.t.Helper()
	ctx, cancel := k.ctx()
	defer cancel()
	var out []Put
	for _, states := range [][]runtime.State{
		{runtime.StatePending, runtime.StateAssigned, runtime.StateActive, runtime.StateCallbacks},
		{runtime.StateCompleted},
	} {
		found, err := k.Runtime.Jobs(ctx, runtime.Query{States: states, Callable: globQuote(handler)})
		if err != nil {
			k.t.Fatalf("zasynctest: list the jobs of %q: %v", handler, err)
		}
		for _, s := range found {
			j := k.Runtime.Job(s.Job)
			rec, err := j.Info(ctx)
			if err != nil {
				k.t.Fatalf("zasynctest: read %s: %v", s.Job, err)
			}
			out = append(out, Put{Job: j, Record: rec})
		}
	}
	return out
}

// globQuote escapes a handler name for Query.Callable, a glob, so that it matches itself only.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RequirePut fails the test unless a job with the handler named was put, in any queue, and,
// when args are given, with those arguments (each compared as JSON, as NewCall marshals it; a
// typed job's one argument is its value). It returns the first such job.
func (k *Kit) RequirePut(handler string, args ...any) *runtime.Job {
	k.t.Helper()
	return k.requirePut("", handler, args)
}

// RequirePutIn is RequirePut for the jobs of one queue.
func (k *Kit) RequirePutIn(queue, handler string, args ...any) *runtime.Job {
	k.t.Helper()
	return k.requirePut(queue, handler, args)
}

func (k *Kit) requirePut(queue, handler string, args []any) *runtime.Job {
	k.t.Helper()
	want := make([]json.RawMessage, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			k.t.Fatalf("zasynctest: argument %d: %v", i, err)
		}
		want[i] = b
	}
	puts := k.Jobs(handler)
	var seen []string
	for _, p := range puts {
		if queue != "" && p.Record.Queue != queue {
			seen = append(seen, p.Record.Ref.String()+" "+p.Record.Call.String())
			continue
		}
		if len(args) == 0 || sameArgs(p.Record.Call.Args, want) {
			return p.Job
		}
		seen = append(seen, p.Record.Ref.String()+" "+p.Record.Call.String())
	}
	where := "in any queue"
	if queue != "" {
		where = "in queue " + queue
	}
	wanted := handler
	if len(args) > 0 {
		wanted = (&runtime.Call{Handler: handler, Args: want}).String()
	}
	if len(seen) == 0 {
		k.t.Fatalf("zasynctest: no job %s was put %s, nor any of %q", wanted, where, handler)
	}
	k.t.Fatalf("zasynctest: no job %s was put %s; the jobs of %q: %s", wanted, where, handler, strings.Join(seen, ", "))
	return nil
}

// RequireNotPut fails the test if a job with the handler named was put, in any queue.
func (k *Kit) RequireNotPut(handler string) {
	k.t.Helper()
	if puts := k.Jobs(handler); len(puts) > 0 {
		names := make([]string, len(puts))
		for i, p := range puts {
			names[i] = p.Record.Ref.String() + " " + p.Record.Call.String()
		}
		k.t.Fatalf("zasynctest: %d jobs of %q were put: %s", len(puts), handler, strings.Join(names, ", "))
	}
}

// sameArgs compares arguments as JSON values (key order and spacing aside).
func sameArgs(got, want []json.RawMessage) bool {
	return slices.EqualFunc(got, want, func(a, b json.RawMessage) bool {
		var x, y any
		if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
			return false
		}
		return reflect.DeepEqual(x, y)
	})
}

// Clock is a clock for tests: it runs with real time, and Advance moves it ahead.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a Clock at the real time.
func NewClock() *Clock { return &Clock{} }

// Now returns the real time plus how far the clock was advanced.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
	return c.Now()
}

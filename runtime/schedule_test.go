package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/persistence"

	_ "time/tzdata" // Europe/Paris wherever the tests run
)

// tickLog collects what the schedulers of several runtimes did with each tick.
type tickLog struct {
	mu   sync.Mutex
	puts map[time.Time]int // ticks put, by how many runtimes
	seen map[time.Time]persistence.TickOutcome
	errs []error
	ch   chan struct{} // a signal after each outcome
}

func newTickLog() *tickLog {
	return &tickLog{puts: map[time.Time]int{}, seen: map[time.Time]persistence.TickOutcome{}, ch: make(chan struct{}, 1)}
}

func (l *tickLog) hook(_ persistence.ScheduleDecl, tick time.Time, res persistence.TickResult, err error) {
	l.mu.Lock()
	if err != nil {
		l.errs = append(l.errs, err)
	} else if res.Outcome == persistence.TickPut {
		l.puts[tick]++
	}
	if _, ok := l.seen[tick]; !ok || res.Outcome == persistence.TickPut {
		l.seen[tick] = res.Outcome
	}
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

// waitFor waits, until ctx ends, for cond to hold over the log.
func (l *tickLog) waitFor(t *testing.T, ctx context.Context, what string, cond func(l *tickLog) bool) {
	t.Helper()
	for {
		l.mu.Lock()
		ok := cond(l)
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-l.ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// Three runtimes on one Redis declare the same every-second schedule, and one stops midway:
// every tick from the first put to the last is put, once, with its derived id, while at least
// one runs.
func TestEveryThreeRuntimesPutEachTickOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, prefix := sharedRedis(t, "every3")
	log := newTickLog()
	var rts []*Runtime
	for i := range 3 {
		// They serve another queue: the ticks' jobs stay pending, to be counted.
		rt := newRuntime(t, Config{Redis: c, Prefix: prefix, UUID: fmt.Sprintf("every-%d", i),
			Queues: []QueueConfig{{Name: "work"}}, PollInterval: 50 * time.Millisecond})
		rt.onTick = log.hook
		spec := "* * * * * *"
		if i == 2 {
			spec = "@every 1s" // the same ticks, written another way
		}
		if err := rt.Every("beat", spec, NewCall("beat"), EveryQueue("ticks")); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		rts = append(rts, rt)
	}
	count := func(l *tickLog) int { return len(l.puts) }
	log.waitFor(t, ctx, "three ticks put", func(l *tickLog) bool { return count(l) >= 3 })
	if err := rts[1].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	n := count(log)
	log.mu.Unlock()
	log.waitFor(t, ctx, "three more ticks put", func(l *tickLog) bool { return count(l) >= n+3 })
	for _, rt := range []*Runtime{rts[0], rts[2]} {
		if err := rt.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, err := range log.errs {
		t.Errorf("a put failed: %v", err)
	}
	var ticks []time.Time
	for tick, n := range log.puts {
		ticks = append(ticks, tick)
		if n != 1 {
			t.Errorf("tick %s put by %d runtimes, want 1", tick.Format(time.TimeOnly), n)
		}
	}
	slices.SortFunc(ticks, time.Time.Compare)
	ids, err := rts[0].store.Pending(ctx, "ticks", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for tick := ticks[0]; !tick.After(ticks[len(ticks)-1]); tick = tick.Add(time.Second) {
		want = append(want, persistence.TickJobID("beat", tick))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Errorf("jobs in the queue:\n%v\nwant one per tick from the first to the last:\n%v", ids, want)
	}
}

// A schedule whose every process was down across its ticks runs the newest missed tick once
// when a process comes back (MissedRunOnce, the default), or skips it (MissedSkip).
func TestEveryMissedTicks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []EveryOption
		want persistence.TickOutcome
	}{
		{"default", nil, persistence.TickPut},
		{"run-once", []EveryOption{EveryMissed(MissedRunOnce)}, persistence.TickPut},
		{"skip", []EveryOption{EveryMissed(MissedSkip)}, persistence.TickMissed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			c, prefix := sharedRedis(t, "missed")
			start := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
			clk := clock.NewFake(start)
			opts := append([]EveryOption{EveryQueue("ticks"), EveryGrace(10 * time.Second)}, tc.opts...)
			run := func(uuid string, log *tickLog) *Runtime {
				rt := newRuntime(t, Config{Redis: c, Prefix: prefix, UUID: uuid, Clock: clk, Queues: []QueueConfig{{Name: "work"}}})
				rt.onTick = log.hook
				if err := rt.Every("hourly", "@hourly", NewCall("report"), opts...); err != nil {
					t.Fatal(err)
				}
				if err := rt.Start(ctx); err != nil {
					t.Fatal(err)
				}
				return rt
			}
			// The first process declares the schedule at 12:00:30: the 12:00 tick is not its.
			first := newTickLog()
			rt := run("missed-1", first)
			first.waitFor(t, ctx, "the first try", func(l *tickLog) bool { return len(l.seen) > 0 })
			if o := first.seen[start.Truncate(time.Hour)]; o != persistence.TickBeforeSchedule {
				t.Errorf("tick before the declaration: %v", o)
			}
			if err := rt.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			// Every process down from then until 15:20: 13:00, 14:00 and 15:00 are missed.
			clk.Set(time.Date(2026, 6, 1, 15, 20, 0, 0, time.UTC))
			second := newTickLog()
			rt = run("missed-2", second)
			newest := time.Date(2026, 6, 1, 15, 0, 0, 0, time.UTC)
			second.waitFor(t, ctx, "the newest missed tick", func(l *tickLog) bool { _, ok := l.seen[newest]; return ok })
			if o := second.seen[newest]; o != tc.want {
				t.Errorf("newest missed tick: %v, want %v", o, tc.want)
			}
			ids, err := rt.store.Pending(ctx, "ticks", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.want == persistence.TickPut {
				want = []string{persistence.TickJobID("hourly", newest)}
			}
			if !slices.Equal(ids, want) {
				t.Errorf("jobs put: %v, want %v", ids, want)
			}
		})
	}
}

// Schedules lists a schedule with its spec, next and last ticks and declaring processes; a
// process that stops is no longer listed as declaring it, and the schedule has no next tick.
func TestSchedulesListing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c, prefix := sharedRedis(t, "list")
	clk := clock.NewFake(time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC))
	rt := newRuntime(t, Config{Redis: c, Prefix: prefix, UUID: "list-1", Clock: clk, Queues: []QueueConfig{{Name: "work"}}})
	log := newTickLog()
	rt.onTick = log.hook
	rt.Handle("report", func(context.Context, *Call) (any, error) { return nil, nil })
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Every("nightly", "0 2 * * *", NewCall("report", "all"), EveryQueue("work"), EveryIn(paris),
		EveryMissed(MissedSkip)); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, ctx, "the first try", func(l *tickLog) bool { return len(l.seen) > 0 })
	ss, err := rt.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 {
		t.Fatalf("listed %+v, want one schedule", ss)
	}
	s := ss[0]
	if s.Name != "nightly" || s.Queue != "work" || s.Spec != "CRON_TZ=Europe/Paris 0 2 * * *" || s.Handler != "report" ||
		s.Missed != MissedSkip || !s.NextTick.Equal(time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)) || !s.LastTick.IsZero() ||
		len(s.Declarers) != 1 || s.Declarers[0].ID != "list-1" || s.Call == nil || s.Call.String() != NewCall("report", "all").String() {
		t.Errorf("listed %+v", s)
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ss, err = rt.Schedules(ctx); err != nil || len(ss) != 1 || len(ss[0].Declarers) != 0 || !ss[0].NextTick.IsZero() {
		t.Errorf("after stop: %+v, %v", ss, err)
	}
}

// Every refuses bad input with one line wrapping ErrInvalid, and declares nothing.
func TestEveryBadInput(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	rt.Handle("h", func(context.Context, *Call) (any, error) { return nil, nil })
	if err := rt.Every("ok", "@every 1m", NewCall("h")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, spec string
		call       Call
		opts       []EveryOption
	}{
		{"", "@every 1m", NewCall("h"), nil},
		{"a b", "@every 1m", NewCall("h"), nil},
		{strings.Repeat("n", 65), "@every 1m", NewCall("h"), nil},
		{"ok", "@every 1m", NewCall("h"), nil}, // declared already
		{"cron", "* * *", NewCall("h"), nil},
		{"cron", "0 25 * * *", NewCall("h"), nil},
		{"cron", "CRON_TZ=Mars/Olympus 0 * * * *", NewCall("h"), nil},
		{"zero", "@every 0s", NewCall("h"), nil},
		{"negative", "@every -5s", NewCall("h"), nil},
		{"fraction", "@every 1.5s", NewCall("h"), nil},
		{"unknown", "@every 1m", NewCall("nobody"), nil}, // this process serves default
		{"zasync", "@every 1m", NewCall("zasync.remind"), nil},
		{"queue", "@every 1m", NewCall("h"), []EveryOption{EveryQueue("a:b")}},
		{"missed", "@every 1m", NewCall("h"), []EveryOption{EveryMissed("twice")}},
		{"grace", "@every 1m", NewCall("h"), []EveryOption{EveryGrace(-time.Second)}},
		{"location", "@every 1m", NewCall("h"), []EveryOption{EveryIn(nil)}},
		{"zone", "0 * * * *", NewCall("h"), []EveryOption{EveryIn(time.FixedZone("UTC+2", 2*3600))}},
		{"begin", "@every 1m", NewCall("h"), []EveryOption{EveryPut(BeginIn(time.Minute))}},
		{"retry", "@every 1m", NewCall("h"), []EveryOption{EveryPut(Retry(nil))}},
		{"unique", "@every 1m", NewCall("h"), []EveryOption{EveryPut(Unique("k", UniqueOpts{}))}},
		{"priority", "@every 1m", NewCall("h"), []EveryOption{EveryPut(Priority(10))}},
	} {
		err := rt.Every(tc.name, tc.spec, tc.call, tc.opts...)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Every(%q, %q, %s): %v, want one line wrapping ErrInvalid", tc.name, tc.spec, tc.call, err)
		}
	}
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	if len(rt.schedules) != 1 {
		t.Errorf("%d schedules declared, want 1", len(rt.schedules))
	}
}

package runtime

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/messages"
)

// actorSystem is a program's own actor system, shut down when the test ends.
func actorSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	sys := actors.NewSystem(nil)
	t.Cleanup(sys.Shutdown)
	return sys
}

// receiver spawns, in sys, an actor that passes on every reminder it gets and acknowledges
// it when ack is set; it is stopped when the test ends.
func receiver(t *testing.T, sys *actor.ActorSystem, ack bool) (*actor.PID, chan *messages.Reminder) {
	t.Helper()
	got := make(chan *messages.Reminder, 16)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.Reminder); ok {
			got <- m
			if ack {
				c.Respond(&messages.ReminderAck{})
			}
		}
	}))
	t.Cleanup(func() { sys.Root.PoisonFuture(pid).Wait() })
	return pid, got
}

// reminderConfig is the Config of one process of a reminder test.
func reminderConfig(c redis.UniversalClient, prefix, uuid string, sys *actor.ActorSystem, name string) Config {
	return Config{Redis: c, Prefix: prefix, UUID: uuid, ActorSystem: sys, ActorName: name,
		PollInterval: 50 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute}
}

// startReminders makes a runtime that hosts target with pid, and starts it.
func startReminders(t *testing.T, cfg Config, target string, pid *actor.PID) *Runtime {
	t.Helper()
	rt := newRuntime(t, cfg)
	if err := rt.HostReminders(target, pid); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return rt
}

// waitPolls waits until rt's dispatcher has polled n more times.
func waitPolls(t *testing.T, rt *Runtime, n int64) {
	t.Helper()
	last := func() int64 {
		if p := rt.Polls(time.Time{}, time.Time{}, 1); len(p) > 0 {
			return p[0].ID
		}
		return 0
	}
	want := last() + n
	eventually(t, "polls", func() bool { return last() >= want })
}

// nothingMore fails the test if a reminder is waiting in got.
func nothingMore(t *testing.T, who string, got chan *messages.Reminder) {
	t.Helper()
	select {
	case m := <-got:
		t.Errorf("%s got a reminder it should not have: %+v", who, m)
	default:
	}
}

// A reminder set by process A, which hosts its target, outlives A: A is closed before it is
// due, and process B (A restarted: the same UUID, a new actor system) delivers it, once. A
// third process, C, serving other queues and hosting another target, runs the whole time in
// A's actor system and never consumes it.
func TestReminderSurvivesRestart(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "remind")
	ctx := testCtx(t)
	sysA := actorSystem(t)
	pidA, gotA := receiver(t, sysA, true)
	a := startReminders(t, reminderConfig(rdb, prefix, "rem-a", sysA, "zasync-a"), "billing", pidA)
	pidC, gotC := receiver(t, sysA, true)
	c := startReminders(t, reminderConfig(rdb, prefix, "rem-c", sysA, "zasync-c"), "other", pidC)

	now, err := a.store.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	due := now.Add(2 * time.Second)
	job, err := a.Remind(ctx, "billing", due, map[string]int{"invoice": 7})
	if err != nil {
		t.Fatal(err)
	}
	if job.Ref().Queue != ReminderQueue("billing") {
		t.Fatalf("the reminder is in %q, want %q", job.Ref().Queue, ReminderQueue("billing"))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if closed, err := c.store.Now(ctx); err != nil {
		t.Fatal(err)
	} else if !closed.Before(due) {
		t.Skipf("closing A took until %s, past the reminder's due time %s: the machine is too busy for this test", closed, due)
	}
	nothingMore(t, "A", gotA)

	// Due, and polled for by C, which serves queues but does not host the target: still pending.
	eventually(t, "the due time", func() bool {
		now, err := c.store.Now(ctx)
		return err == nil && now.After(due)
	})
	waitPolls(t, c, 3)
	if rec := mustInfo(t, job); rec.Status != StatusPending {
		t.Fatalf("the reminder, due with only C running: %s, want pending", rec.Status)
	}

	sysB := actorSystem(t)
	pidB, gotB := receiver(t, sysB, true)
	b := startReminders(t, reminderConfig(rdb, prefix, "rem-a", sysB, ""), "billing", pidB)
	var m *messages.Reminder
	select {
	case m = <-gotB:
	case <-ctx.Done():
		t.Fatal("B never got the reminder")
	}
	if m.Target != "billing" || m.ID != job.ID() || m.Attempt != 1 || !m.Due.Equal(due) || string(m.Payload) != `{"invoice":7}` {
		t.Fatalf("B got %+v, want reminder %s to billing, attempt 1, due %s, payload {\"invoice\":7}", m, job.ID(), due)
	}
	out, err := job.Wait(ctx)
	if err != nil || out.Failure != nil {
		t.Fatalf("the reminder's job: %+v %v, want delivered", out, err)
	}
	// Once: nothing more arrives while B and C go on polling.
	waitPolls(t, b, 3)
	waitPolls(t, c, 3)
	nothingMore(t, "B", gotB)
	nothingMore(t, "A", gotA)
	nothingMore(t, "C", gotC)
	if rec := mustInfo(t, job); rec.Attempt != 1 || rec.Owner.Dispatcher != "rem-a" {
		t.Fatalf("the reminder's record: attempt %d, owner %v; want one attempt, by B", rec.Attempt, rec.Owner)
	}
}

// A reminder whose delivery was not acknowledged when its process stopped (as if it had
// crashed between the delivery and the commit) is delivered again, with the same ID and the
// next attempt, by the process that hosts its target next.
func TestReminderRedeliveredAfterInterruption(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "remind")
	ctx := testCtx(t)
	sys := actorSystem(t)
	mute, gotMute := receiver(t, sys, false)
	first := startReminders(t, reminderConfig(rdb, prefix, "rem-first", sys, "zasync-first"), "ping", mute)
	job, err := first.Remind(ctx, "ping", time.Now().Add(-time.Hour), "hello")
	if err != nil {
		t.Fatal(err)
	}
	var m1 *messages.Reminder
	select {
	case m1 = <-gotMute:
	case <-ctx.Done():
		t.Fatal("the first delivery never came")
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pid, got := receiver(t, sys, true)
	startReminders(t, reminderConfig(rdb, prefix, "rem-second", sys, "zasync-second"), "ping", pid)
	var m2 *messages.Reminder
	select {
	case m2 = <-got:
	case <-ctx.Done():
		t.Fatal("the reminder was not delivered again")
	}
	if m2.ID != m1.ID || m2.Attempt <= m1.Attempt || string(m2.Payload) != `"hello"` {
		t.Fatalf("deliveries %+v then %+v: want the same ID, a later attempt", m1, m2)
	}
	if out, err := job.Wait(ctx); err != nil || out.Failure != nil {
		t.Fatalf("the reminder's job: %+v %v, want delivered", out, err)
	}
}

// A reminder due while its target's actor is not running is not committed: it waits, and is
// delivered to the actor that hosts the target next (HostReminders may replace the actor of
// a target while the runtime runs). An answer that is not a ReminderAck fails the reminder.
func TestReminderWaitsForItsActor(t *testing.T) {
	t.Parallel()
	sys := actorSystem(t)
	gone := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	rt := newRuntime(t, Config{UUID: "d-rem-gone", ActorSystem: sys,
		PollInterval: 50 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute})
	if err := rt.HostReminders("late", gone); err != nil {
		t.Fatal(err)
	}
	rude := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*messages.Reminder); ok {
			c.Respond("thanks")
		}
	}))
	t.Cleanup(func() { sys.Root.PoisonFuture(rude).Wait() })
	if err := rt.HostReminders("rude", rude); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := sys.Root.PoisonFuture(gone).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(ctx)
	job, err := rt.Remind(ctx, "late", time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a delivery to the stopped actor", func() bool {
		rec := mustInfo(t, job)
		return rec.Retry["unavailable"] > 0
	})
	if rec := mustInfo(t, job); rec.Status == StatusCompleted {
		t.Fatalf("a reminder to a stopped actor completed: %+v", rec)
	}
	pid, got := receiver(t, sys, true)
	if err := rt.HostReminders("late", pid); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.ID != job.ID() {
			t.Fatalf("got reminder %s, want %s", m.ID, job.ID())
		}
	case <-ctx.Done():
		t.Fatal("the new actor never got the reminder")
	}
	if out, err := job.Wait(ctx); err != nil || out.Failure != nil {
		t.Fatalf("the reminder's job: %+v %v, want delivered", out, err)
	}

	rudeJob, err := rt.Remind(ctx, "rude", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rudeJob.Wait(ctx)
	if err != nil || out.Failure == nil || !errors.Is(out.Failure, ErrInvalid) || !strings.Contains(out.Failure.Message, "not a *messages.ReminderAck") {
		t.Fatalf("a reminder answered with a string: %+v %v, want an ErrInvalid failure", out, err)
	}
}

// Bad input to Remind and HostReminders is refused with a one-line error, and nothing is
// written; a target new to a started runtime is refused; zasync's queues cannot be configured.
func TestReminderBadInput(t *testing.T) {
	t.Parallel()
	sys := actorSystem(t)
	pid, _ := receiver(t, sys, true)
	rt := newRuntime(t, Config{UUID: "d-rem-bad", ActorSystem: sys})
	ctx := testCtx(t)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		target  string
		at      time.Time
		payload any
	}{
		{"empty target", "", now, 1},
		{"target with a colon", "a:b", now, 1},
		{"target too long", strings.Repeat("t", actors.MaxTargetLen+1), now, 1},
		{"no due time", "t", time.Time{}, 1},
		{"due after year 9999", "t", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), 1},
		{"payload that does not marshal", "t", now, math.Inf(1)},
		{"raw payload that is not JSON", "t", now, json.RawMessage("{")},
	} {
		if _, err := rt.Remind(ctx, tc.target, tc.at, tc.payload); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line ErrInvalid", tc.name, err)
		}
	}
	if n, err := rt.Count(ctx, Query{States: []State{StatePending}}); err != nil || n != 0 {
		t.Fatalf("pending jobs after refused reminders: %d %v, want 0", n, err)
	}
	if _, err := rt.Remind(ctx, strings.Repeat("t", actors.MaxTargetLen), now, 1); err != nil {
		t.Errorf("the longest target: %v", err)
	}

	stranger := actorSystem(t).Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	stranger.Id = "no-such-actor"
	for name, tc := range map[string]struct {
		target string
		pid    *actor.PID
	}{
		"nil pid":             {"t", nil},
		"bad target":          {"a b", pid},
		"no such actor":       {"t", stranger},
		"target too long":     {strings.Repeat("t", actors.MaxTargetLen+1), pid},
		"reserved characters": {"{t}", pid},
	} {
		if err := rt.HostReminders(tc.target, tc.pid); !errors.Is(err, ErrInvalid) {
			t.Errorf("HostReminders, %s: %v, want ErrInvalid", name, err)
		}
	}
	if err := rt.HostReminders("hosted", pid); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(ctx)
	if err := rt.HostReminders("new", pid); !errors.Is(err, ErrStarted) {
		t.Errorf("a new target after Start: %v, want ErrStarted", err)
	}
	if err := rt.HostReminders("hosted", pid); err != nil {
		t.Errorf("a hosted target's actor again after Start: %v", err)
	}
	if _, err := New(Config{Queues: []QueueConfig{{Name: ReminderQueue("t")}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a reminder queue in Config.Queues: %v, want ErrInvalid", err)
	}
}

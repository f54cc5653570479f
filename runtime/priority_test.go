package runtime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Priority is stored with the job, from a put's option, a handler's default (Handle's and a
// typed Register's options) or PutMany's; a put's own option wins over its handler's; and a
// claim takes the highest priority first.
func TestPriority(t *testing.T) {
	ctx := testCtx(t)
	rt := newRuntime(t, Config{})
	noop := func(context.Context, *Call) (any, error) { return nil, nil }
	if err := rt.Handle("urgent", noop, Priority(8)); err != nil {
		t.Fatal(err)
	}
	typed, err := Register(rt, "typed", func(context.Context, int) (int, error) { return 0, nil }, Priority(7))
	if err != nil {
		t.Fatal(err)
	}
	q := rt.Queue(DefaultQueue)
	put := func(call Call, opts ...PutOption) *Job {
		t.Helper()
		j, err := q.Put(ctx, call, opts...)
		if err != nil {
			t.Fatalf("Put(%s): %v", call.Handler, err)
		}
		return j
	}
	plain := put(NewCall("plain"))
	low := put(NewCall("low"), Priority(MinPriority))
	top := put(NewCall("top"), Priority(MaxPriority))
	urgent := put(NewCall("urgent"))
	calmed := put(NewCall("urgent"), Priority(3)) // the put's option wins
	tj, err := typed.Put(ctx, DefaultQueue, 1)
	if err != nil {
		t.Fatal(err)
	}
	many, err := q.PutMany(ctx, []Call{NewCall("m1"), NewCall("m2")}, Priority(6))
	if err != nil {
		t.Fatal(err)
	}
	want := map[*Job]int{plain: DefaultPriority, low: 1, top: 9, urgent: 8, calmed: 3, tj.Job: 7, many[0]: 6, many[1]: 6}
	for j, p := range want {
		rec, err := j.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Priority != p {
			t.Errorf("job %s: priority %d, want %d", rec.Call.Handler, rec.Priority, p)
		}
		if s, err := j.Summary(ctx); err != nil || s.Priority != p {
			t.Errorf("job %s: summary's priority %d (%v), want %d", rec.Call.Handler, s.Priority, err, p)
		}
	}

	// Claimed in priority order, first come first served within one.
	uuid := "dispatcher-prio"
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 20}}}
	if err := rt.store.Register(ctx, DefaultQueue, uuid, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.store.Activate(ctx, DefaultQueue, uuid); err != nil {
		t.Fatal(err)
	}
	claimed, err := rt.store.Claim(ctx, persistence.ClaimParams{Queue: DefaultQueue, Dispatcher: uuid, Agent: "main", Size: 20})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range claimed {
		got = append(got, j.Call.Handler)
	}
	if w := []string{"top", "urgent", "typed", "m1", "m2", "plain", "urgent", "low"}; !slices.Equal(got, w) {
		t.Fatalf("claim order %v, want %v", got, w)
	}
}

// A priority out of range is a clear ErrInvalid, for a put, PutMany, a handler's default and
// a typed put, and nothing is written.
func TestPriorityInvalid(t *testing.T) {
	ctx := testCtx(t)
	rt := newRuntime(t, Config{})
	q := rt.Queue(DefaultQueue)
	noop := func(context.Context, *Call) (any, error) { return nil, nil }
	typed, err := Register(rt, "typed", func(context.Context, int) (int, error) { return 0, nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{0, -1, 10} {
		_, err := q.Put(ctx, NewCall("h"), Priority(p))
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Priority(%d): %v, want ErrInvalid", p, err)
		}
		if want := "priority"; err != nil && !strings.Contains(err.Error(), want) {
			t.Fatalf("Priority(%d): %q does not say %q", p, err, want)
		}
		if _, err := q.PutMany(ctx, []Call{NewCall("a"), NewCall("b")}, Priority(p)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("PutMany with Priority(%d): %v, want ErrInvalid", p, err)
		}
		if _, err := typed.Put(ctx, DefaultQueue, 1, Priority(p)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("typed Put with Priority(%d): %v, want ErrInvalid", p, err)
		}
		if err := rt.Handle("bad", noop, Priority(p)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Handle with Priority(%d): %v, want ErrInvalid", p, err)
		}
	}
	st, err := rt.store.Stats(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if st.Due+st.Scheduled != 0 {
		t.Fatalf("after bad puts: %+v, want nothing queued", st)
	}
}

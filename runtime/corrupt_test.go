package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// A job whose stored call cannot be read back (a call nested 10,001 levels deep, which an
// earlier version accepted) fails with a CorruptRecordError and frees its slot; a job queued
// behind it on the agent's only slot runs; and the queries of the queue list it instead of
// failing. Before, it stayed ACTIVE holding the slot, and `count active` failed ("corrupt
// record") for the whole queue.
func TestUnreadableCallFailsItsJobOnly(t *testing.T) {
	t.Parallel()
	c, prefix := sharedRedis(t, "corrupt")
	rt := newRuntime(t, Config{
		Redis: c, Prefix: prefix, UUID: "d-corrupt",
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 1}}}},
		PollInterval: 100 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	rt.Handle("ok", Func0(func(context.Context) (int, error) { return 1, nil }))
	ctx := testCtx(t)
	bad, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("ok"))
	if err != nil {
		t.Fatal(err)
	}
	deep := `{"handler":"ok","args":[` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]}`
	if err := c.HSet(ctx, prefix+":{"+DefaultQueue+"}:job:"+bad.Ref().ID, "call", deep).Err(); err != nil {
		t.Fatal(err)
	}
	good, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("ok"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rt.Count(ctx, Query{States: []State{StatePending}}); err != nil || n != 2 {
		t.Fatalf("count pending: %d %v, want 2", n, err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rt.Stop(ctx)
	})
	out, err := bad.Wait(ctx)
	if err != nil || out.Failure == nil || !errors.Is(out.Failure, persistence.ErrCorrupt) ||
		!strings.Contains(out.Failure.Message, "field call") {
		t.Fatalf("the unreadable job: %+v %v, want a CorruptRecordError naming its call", out, err)
	}
	if n := waitInt(t, good); n != 1 {
		t.Fatalf("the job behind it: %d, want 1", n)
	}
	if n, err := rt.Count(ctx, Query{States: []State{StateActive}}); err != nil || n != 0 {
		t.Fatalf("count active: %d %v, want 0", n, err)
	}
	failed, err := rt.Jobs(ctx, Query{States: []State{StateFailed}})
	if err != nil || len(failed) != 1 || failed[0].Job != bad.Ref() || !strings.Contains(failed[0].Call, "corrupt record: call unreadable") {
		t.Fatalf("jobs failed: %+v %v, want the unreadable job, shown as corrupt", failed, err)
	}
}

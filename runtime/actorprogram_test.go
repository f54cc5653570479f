package runtime

import (
	"encoding/json"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
)

// invoiceActor is a run's actor for "invoice": it answers amount × 1.2, rounded to cents.
var invoiceActor = actor.PropsFromFunc(func(c actor.Context) {
	if m, ok := c.Message().(*messages.RunJob); ok {
		var cents int
		if err := json.Unmarshal(m.Args[0], &cents); err != nil {
			c.Respond(&messages.JobReply{Err: invalidf("amount: %v", err)})
			return
		}
		c.Respond(&messages.JobReply{Value: cents * 12 / 10})
	}
})

// A program's own actor system hosts zasync: one of the program's actors puts a job by
// message to the queue's actor and hears its outcome as a message; the job's handler is
// another of the program's actors (HandleActor); and a reminder to another of its actors, set by the process
// before it restarts, is delivered once after the restart, in the restarted process's new
// actor system.
func TestProgramActorSystemHostsZasync(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "program")
	ctx := testCtx(t)

	// The program before its restart.
	sys := actorSystem(t)
	ledger, before := receiver(t, sys, true)
	cfg := reminderConfig(rdb, prefix, "program", sys, "")
	rt := newRuntime(t, cfg)
	if err := rt.HandleActor("invoice", invoiceActor); err != nil {
		t.Fatal(err)
	}
	if err := rt.HostReminders("ledger", ledger); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := sys.ProcessRegistry.GetLocal("zasync/handler/invoice"); !ok {
		t.Fatal("no host of the invoice handler below zasync's root in the program's actor system")
	}
	// One of the program's actors puts the job by message and hears its outcome as one.
	q := rt.Queue(DefaultQueue)
	queuePID, err := q.PID()
	if err != nil {
		t.Fatal(err)
	}
	heard := make(chan any, 4)
	clerk, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			put, err := q.PutMessage(NewCall("invoice", 1000), Notify(c.Self()))
			if err != nil {
				heard <- err
				return
			}
			c.Request(queuePID, put)
		case *messages.PutDone, *messages.JobCompleted:
			heard <- m
		}
	}), "clerk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Root.PoisonFuture(clerk).Wait() })
	var job Ref
	for done := false; !done; {
		select {
		case m := <-heard:
			switch m := m.(type) {
			case error:
				t.Fatal(m)
			case *messages.PutDone:
				if m.Err != nil || len(m.Jobs) != 1 {
					t.Fatalf("the clerk's put: %+v", m)
				}
				job = Ref(m.Jobs[0])
			case *messages.JobCompleted:
				if string(m.Result) != "1200" || m.Failure != nil || Ref(m.Job) != job {
					t.Fatalf("the clerk heard %+v, want job %s with 1200", m, job)
				}
				done = true
			}
		case <-ctx.Done():
			t.Fatal("the clerk never heard of its invoice")
		}
	}
	if n := waitInt(t, rt.Job(job)); n != 1200 {
		t.Fatalf("invoice through Job.Wait: %d, want 1200", n)
	}
	// The reminder is set once the process no longer serves, due at once: nothing can
	// deliver it before the restart, however slow the machine.
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	due, err := rt.store.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reminder, err := rt.Remind(ctx, "ledger", due, map[string]string{"close": "2026-12"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	nothingMore(t, "the ledger before the restart", before)

	// The program restarted: a new actor system, the same dispatcher UUID.
	sys2 := actorSystem(t)
	ledger2, after := receiver(t, sys2, true)
	rt2 := newRuntime(t, reminderConfig(rdb, prefix, "program", sys2, ""))
	if err := rt2.HandleActor("invoice", invoiceActor); err != nil {
		t.Fatal(err)
	}
	if err := rt2.HostReminders("ledger", ledger2); err != nil {
		t.Fatal(err)
	}
	if err := rt2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-after:
		if m.ID != reminder.ID() || !m.Due.Equal(due) || string(m.Payload) != `{"close":"2026-12"}` {
			t.Fatalf("the restarted ledger got %+v, want reminder %s due %s", m, reminder.ID(), due)
		}
	case <-ctx.Done():
		t.Fatal("the reminder never reached the restarted program")
	}
	if out, err := rt2.Job(reminder.Ref()).Wait(ctx); err != nil || out.Failure != nil {
		t.Fatalf("the reminder: %+v %v, want delivered", out, err)
	}
	waitPolls(t, rt2, 3)
	nothingMore(t, "the restarted ledger", after)
	// The handler works after the restart too.
	again, err := rt2.Queue(DefaultQueue).Put(ctx, NewCall("invoice", 500))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, again); n != 600 {
		t.Fatalf("invoice after the restart: %d, want 600", n)
	}
}

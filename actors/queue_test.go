package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// testQueue starts a queue actor for queue "q" over a test store, below a root of its own
// stopped when the test ends.
func testQueue(t *testing.T, store persistence.Store, queued func(int)) *Queue {
	t.Helper()
	root, err := StartRoot(nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	qa, err := StartQueue(root, QueueOptions{Store: store, Queue: "q", Queued: queued})
	if err != nil {
		root.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		root.Stop()
		<-qa.Done()
	})
	return qa
}

func putOne(handler string) *messages.Put {
	return &messages.Put{Specs: []persistence.JobSpec{{Call: persistence.Call{Handler: handler}}}}
}

// A caller handed its cohort that gives up before carrying it leaves it to a goroutine of
// its own: the other puts of the cohort are still made and answered.
func TestQueueCallerLeavingHandsOnItsCohort(t *testing.T) {
	store := testStore(t)
	qa := testQueue(t, store, nil)
	other := &localPut{m: putOne("other"), ctx: context.Background(), reply: make(chan any, 1)}
	leaving := &localPut{m: putOne("leaving"), ctx: context.Background(), reply: make(chan any, 1)}
	leaving.state.Store(putHanded)
	co := &cohort{puts: []queuedPut{{m: leaving.m, local: leaving}, {m: other.m, local: other}}, self: qa.pid}
	qa.p.flights.Add(1)
	leaving.reply <- co

	if _, err := qa.leave(leaving, context.Canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("leave: %v, want context.Canceled", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case r := <-other.reply:
		d := r.(*messages.PutDone)
		if d.Err != nil || len(d.Jobs) != 1 {
			t.Fatalf("the other put of the cohort: %v, %v", d.Jobs, d.Err)
		}
		if j, err := store.Get(ctx, d.Jobs[0]); err != nil || j.Call.Handler != "other" {
			t.Fatalf("the other put's job: %v, %v", j, err)
		}
	case <-ctx.Done():
		t.Fatal("the cohort left by its carrier was not made")
	}
}

// gateFirst is a store whose first PutEach waits until release is closed.
type gateFirst struct {
	persistence.Store
	entered, release chan struct{}
	calls            int
}

func (g *gateFirst) PutEach(ctx context.Context, q string, groups [][]persistence.JobSpec) ([][]*persistence.Job, []error, error) {
	if g.calls++; g.calls == 1 {
		close(g.entered)
		<-g.release
	}
	return g.Store.PutEach(ctx, q, groups)
}

// A queue actor that panics is restarted: the puts it held are refused as unavailable
// (nothing written, a retry policy tries again), the put on its way is answered, and the
// restarted actor puts again.
func TestQueueRestartRefusesHeldPuts(t *testing.T) {
	g := &gateFirst{Store: testStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	panicked := false
	qa := testQueue(t, g, func(int) {
		if !panicked {
			panicked = true
			panic("boom")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := qa.Put(ctx, putOne("first"))
		first <- err
	}()
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("the first put never reached the store")
	}
	if _, err := qa.Put(ctx, putOne("held")); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("put held when the actor panicked: %v, want ErrUnavailable", err)
	}
	after, err := qa.Put(ctx, putOne("after"))
	if err != nil || len(after) != 1 {
		t.Fatalf("put after the restart: %v, %v", after, err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatalf("the put on its way at the restart: %v", err)
	}
}

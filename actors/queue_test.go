package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// testQueue starts a queue actor for queue "q" over a test store, below a root of its own
// stopped when the test ends.
func testQueue(t *testing.T, store persistence.Store, queued func(int)) *Queue {
	t.Helper()
	qa, _ := testQueueRoot(t, store, queued)
	return qa
}

// testQueueRoot is testQueue, with the root.
func testQueueRoot(t *testing.T, store persistence.Store, queued func(int)) (*Queue, *Root) {
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
	return qa, root
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

// subscriptions is a store that counts the wake-up subscriptions open, and refuses the
// first failures of them.
type subscriptions struct {
	persistence.Store
	failures atomic.Int32 // Subscribe calls still to refuse
	open     atomic.Int32
}

func (s *subscriptions) Subscribe(ctx context.Context, queues ...string) (persistence.Subscription, error) {
	if s.failures.Add(-1) >= 0 {
		return nil, fmt.Errorf("%w: refused by the test", persistence.ErrUnavailable)
	}
	sub, err := s.Store.Subscribe(ctx, queues...)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedSub{Subscription: sub, open: &s.open}, nil
}

type countedSub struct {
	persistence.Subscription
	open   *atomic.Int32
	closed sync.Once
}

func (c *countedSub) Close() error {
	c.closed.Do(func() { c.open.Add(-1) })
	return c.Subscription.Close()
}

// wakeRecorder spawns an actor that passes the Wake messages it gets to a channel: a
// dispatcher as a queue actor sees it.
func wakeRecorder(t *testing.T, root *Root) (*actor.PID, chan *messages.Wake) {
	t.Helper()
	woken := make(chan *messages.Wake, 100)
	pid, err := root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if w, ok := c.Message().(*messages.Wake); ok {
			woken <- w
		}
	}), "woken")
	if err != nil {
		t.Fatal(err)
	}
	return pid, woken
}

// awaitWake waits, bounded, for a Wake of queue "q".
func awaitWake(t *testing.T, woken chan *messages.Wake, why string) {
	t.Helper()
	if w := receive(t, woken, why+": no wake-up"); w.Queue != "q" {
		t.Fatalf("%s: a wake-up of queue %q, want q", why, w.Queue)
	}
}

// A queue actor served by a dispatcher wakes it once subscribed (for the puts made while it
// subscribed) and at each put from any process; once the dispatcher stops, it closes its
// subscription.
func TestQueueActorWakesItsDispatchers(t *testing.T) {
	store := &subscriptions{Store: testStore(t)}
	qa, root := testQueueRoot(t, store, nil)
	d, woken := wakeRecorder(t, root)
	sys := root.System().Root
	sys.Send(qa.PID(), &messages.Serve{Dispatcher: d})
	awaitWake(t, woken, "once subscribed")
	sys.Send(qa.PID(), &messages.Serve{Dispatcher: d}) // every poll says it again: still one server
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A put made past the queue actor, as another process makes it.
	if _, err := store.Put(ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
		t.Fatal(err)
	}
	awaitWake(t, woken, "after a put")
	if n := store.open.Load(); n != 1 {
		t.Fatalf("%d subscriptions open, want 1", n)
	}
	if err := sys.PoisonFuture(d).Wait(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the subscription closed after its only dispatcher stopped", func() bool { return store.open.Load() == 0 })
}

// A listener that cannot subscribe ends; the dispatcher's next Serve (its next poll) starts
// another, which wakes it.
func TestQueueActorListensAgainAfterAFailure(t *testing.T) {
	store := &subscriptions{Store: testStore(t)}
	store.failures.Store(1)
	qa, root := testQueueRoot(t, store, nil)
	d, woken := wakeRecorder(t, root)
	sys := root.System().Root
	sys.Send(qa.PID(), &messages.Serve{Dispatcher: d})
	waitUntil(t, "the listener to try to subscribe", func() bool { return store.failures.Load() <= 0 })
	// The failed listener's end reaches the actor before the next Serve, or the Serve finds
	// it still listening and the one after starts a new one: serve until woken.
	waitUntil(t, "a wake-up from a listener after the failed one", func() bool {
		sys.Send(qa.PID(), &messages.Serve{Dispatcher: d})
		select {
		case w := <-woken:
			if w.Queue != "q" {
				t.Fatalf("a wake-up of queue %q, want q", w.Queue)
			}
			return true
		case <-time.After(20 * time.Millisecond):
			return false
		}
	})
}

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

// gateFirst is a store whose first n PutEach calls wait until release is closed; each
// sends on entered as it begins to wait.
type gateFirst struct {
	persistence.Store
	n                int
	entered, release chan struct{}
	mu               sync.Mutex
	calls            int
}

func (g *gateFirst) PutEach(ctx context.Context, q string, groups [][]persistence.JobSpec) ([][]*persistence.Job, []error, error) {
	g.mu.Lock()
	g.calls++
	gated := g.calls <= g.n
	g.mu.Unlock()
	if gated {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Store.PutEach(ctx, q, groups)
}

// A queue actor that panics is restarted: the puts it held are refused as unavailable
// (nothing written, a retry policy tries again), the puts on their way are answered, and the
// restarted actor puts again.
func TestQueueRestartRefusesHeldPuts(t *testing.T) {
	g := &gateFirst{Store: testStore(t), n: maxPutFlights, entered: make(chan struct{}, maxPutFlights), release: make(chan struct{})}
	defer func() {
		select {
		case <-g.release:
		default:
			close(g.release) // a test that failed while the gate held ends at once
		}
	}()
	panicked := false
	qa := testQueue(t, g, func(int) {
		if !panicked {
			panicked = true
			panic("boom")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One put at a time, each in a call of its own while fewer than maxPutFlights are on
	// their way (see mayFly), until every call the actor sends at once is held.
	firsts := make(chan error, maxPutFlights)
	for i := range maxPutFlights {
		go func() {
			_, err := qa.Put(ctx, putOne(fmt.Sprint("first ", i)))
			firsts <- err
		}()
		select {
		case <-g.entered:
		case <-ctx.Done():
			t.Fatalf("put %d never reached the store", i)
		}
	}
	if _, err := qa.Put(ctx, putOne("held")); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("put held when the actor panicked: %v, want ErrUnavailable", err)
	}
	after, err := qa.Put(ctx, putOne("after"))
	if err != nil || len(after) != 1 {
		t.Fatalf("put after the restart: %v, %v", after, err)
	}
	close(g.release)
	for range maxPutFlights {
		if err := <-firsts; err != nil {
			t.Fatalf("a put on its way at the restart: %v", err)
		}
	}
}

// Puts sent by an actor go only when no call of the queue is on its way, so that they are
// made and answered in the order sent; Go callers' puts meanwhile wait with them.
func TestQueueMessagePutsWaitForCallsOnTheirWay(t *testing.T) {
	g := &gateFirst{Store: testStore(t), n: 1, entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	}()
	held := make(chan int, 16)
	qa, root := testQueueRoot(t, g, func(n int) { held <- n })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	await := func(what string, c <-chan int) int {
		t.Helper()
		select {
		case n := <-c:
			return n
		case <-ctx.Done():
			t.Fatalf("no %s", what)
			return 0
		}
	}
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

	answers := make(chan *messages.PutDone, 2)
	sender, err := root.System().Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			for i := range 2 {
				p := putOne(fmt.Sprint("by message ", i))
				p.Tag = fmt.Sprint(i)
				c.Request(qa.PID(), p)
			}
		case *messages.PutDone:
			answers <- m
		}
	}), "sender")
	if err != nil {
		t.Fatal(err)
	}
	defer root.System().Root.Stop(sender)
	// With one call on its way, a Go caller's put would go in a call of its own; the
	// actor's puts wait, and so does a Go caller's put after them.
	if n := await("first message put held", held); n != 1 {
		t.Fatalf("%d puts held, want 1", n)
	}
	if n := await("second message put held", held); n != 2 {
		t.Fatalf("%d puts held, want 2", n)
	}
	local := make(chan error, 1)
	go func() {
		_, err := qa.Put(ctx, putOne("local"))
		local <- err
	}()
	if n := await("the Go caller's put held", held); n != 3 {
		t.Fatalf("%d puts held, want 3", n)
	}
	close(g.release)
	for _, c := range []chan error{first, local} {
		select {
		case err := <-c:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("a Go caller's put was not answered")
		}
	}
	for i := range 2 {
		select {
		case d := <-answers:
			if d.Err != nil || d.Tag != fmt.Sprint(i) {
				t.Fatalf("answer %d: tag %q, %v; want tag %d, no error", i, d.Tag, d.Err, i)
			}
		case <-ctx.Done():
			t.Fatalf("no answer %d", i)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls != 2 {
		t.Errorf("%d store calls, want 2: the held puts in one", g.calls)
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

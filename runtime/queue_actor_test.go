package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// gatedPuts is a store that counts its PutEach calls, with how many puts each carried, and
// holds every call made before open is called.
type gatedPuts struct {
	persistence.Store
	entries chan struct{} // one value for each call held
	release chan struct{}
	opened  sync.Once
	mu      sync.Mutex
	calls   []int // the number of puts (groups) of each call, in order
}

// open lets the calls held go on, and those made from now on.
func (g *gatedPuts) open() { g.opened.Do(func() { close(g.release) }) }

func gate(t *testing.T, rt *Runtime) *gatedPuts {
	g := &gatedPuts{Store: rt.store, entries: make(chan struct{}, 64), release: make(chan struct{})}
	rt.store = g
	t.Cleanup(g.open) // before rt's Close: a test that failed while the gate held ends at once
	return g
}

func (g *gatedPuts) PutEach(ctx context.Context, q string, groups [][]persistence.JobSpec) ([][]*persistence.Job, []error, error) {
	g.mu.Lock()
	g.calls = append(g.calls, len(groups))
	g.mu.Unlock()
	select {
	case <-g.release:
	default:
		g.entries <- struct{}{}
		<-g.release
	}
	return g.Store.PutEach(ctx, q, groups)
}

func (g *gatedPuts) callSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.calls...)
}

// fillCalls puts one job at a time, each in a goroutine of its own, until a put is held for
// a later cohort: the queue actor has as many store calls on their way as it sends at once,
// each of one put, held by g. It returns each of those puts' outcome, and that the last put
// is held; put names the calls.
func fillCalls(t *testing.T, ctx context.Context, q *Queue, g *gatedPuts, held <-chan int, put string) (flying []chan error, last chan error) {
	t.Helper()
	for i := 0; ; i++ {
		done := make(chan error, 1)
		go func() {
			_, err := q.Put(ctx, NewCall(put, i))
			done <- err
		}()
		select {
		case <-g.entries:
			flying = append(flying, done)
		case n := <-held:
			if n != 1 {
				t.Fatalf("%d puts held, want the last one alone", n)
			}
			if len(flying) < 2 {
				t.Fatalf("%d store calls on their way before a put was held, want several", len(flying))
			}
			return flying, done
		case <-ctx.Done():
			t.Fatalf("put %d was neither sent nor held", i)
		}
	}
}

// awaitAll waits for each outcome and fails on an error.
func awaitAll(t *testing.T, ctx context.Context, outcomes []chan error, what string) {
	t.Helper()
	for i, c := range outcomes {
		if err := await(t, ctx, c, fmt.Sprintf("%s %d", what, i)); err != nil {
			t.Fatalf("%s %d: %v", what, i, err)
		}
	}
}

// heldCounts makes rt report, on the returned channel, how many puts its queue actors hold
// for their next cohort each time one more is held.
func heldCounts(rt *Runtime) <-chan int {
	held := make(chan int, 1024)
	rt.onPutQueued = func(_ string, n int) { held <- n }
	return held
}

// awaitHeld waits until the queue actor holds n puts.
func awaitHeld(t *testing.T, ctx context.Context, held <-chan int, n int) {
	t.Helper()
	for got := 0; got < n; {
		got = await(t, ctx, held, fmt.Sprintf("%d puts held", n))
	}
}

// Puts made from many goroutines while the queue's store calls are on their way go together
// in the next one, and each succeeds or fails on its own: a put naming an unknown quota
// fails alone.
func TestPutsCoalesce(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	g := gate(t, rt)
	held := heldCounts(rt)
	q := rt.Queue(DefaultQueue)
	if err := q.CreateQuota(ctx, "db", 1); err != nil {
		t.Fatal(err)
	}
	flying, first := fillCalls(t, ctx, q, g, held, "first")

	const n = 16
	type result struct {
		job *Job
		err error
	}
	results := make([]chan result, n)
	for i := range n {
		results[i] = make(chan result, 1)
		go func() {
			var opts []PutOption
			switch i % 4 {
			case 1:
				opts = append(opts, Quotas("db"))
			case 3:
				opts = append(opts, Quotas("missing"))
			}
			job, err := q.Put(ctx, NewCall("p", i), opts...)
			results[i] <- result{job, err}
		}()
	}
	awaitHeld(t, ctx, held, n+1)
	g.open()

	awaitAll(t, ctx, append(flying, first), "first put")
	good := 0
	for i := range n {
		r := await(t, ctx, results[i], fmt.Sprintf("put %d", i))
		if i%4 == 3 {
			if !errors.Is(r.err, ErrUnknownQuota) || r.job != nil {
				t.Errorf("put %d naming an unknown quota: %v, %v; want ErrUnknownQuota", i, r.job, r.err)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("put %d: %v", i, r.err)
		}
		good++
		rec := mustInfo(t, r.job)
		if want := NewCall("p", i).String(); rec.Call.String() != want || rec.Status != StatusPending {
			t.Errorf("put %d stored %s %s, want %s pending", i, rec.Call.String(), rec.Status, want)
		}
	}
	want := make([]int, len(flying))
	for i := range want {
		want[i] = 1
	}
	want = append(want, n+1)
	if got := g.callSizes(); !slices.Equal(got, want) {
		t.Errorf("store calls carried %v puts, want %v: the held puts in one call", got, want)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Due != int64(len(flying)+1+good) {
		t.Errorf("%d jobs due, want %d: a refused put wrote something", st.Due, len(flying)+1+good)
	}
}

// A put held behind a store call that does not return ends with its caller's deadline, and
// its job is not written: the next cohort leaves it out.
func TestPutWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	g := gate(t, rt)
	held := heldCounts(rt)
	q := rt.Queue(DefaultQueue)

	flying, first := fillCalls(t, ctx, q, g, held, "first")

	// Its deadline passes once it is held, whenever that is on a busy machine.
	short := newExpiring(ctx)
	late := make(chan error, 1)
	go func() {
		_, err := q.Put(short, NewCall("late"))
		late <- err
	}()
	awaitHeld(t, ctx, held, 2)
	short.expire()
	if err := await(t, ctx, late, "the late put"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put held past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, err := q.Put(short, NewCall("after the deadline")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put with a context already ended: %v, want context.DeadlineExceeded", err)
	}

	g.open()
	awaitAll(t, ctx, append(flying, first), "first put")
	// A put made after the late one's cohort ends after it too.
	last, err := q.Put(ctx, NewCall("last"))
	if err != nil {
		t.Fatal(err)
	}
	// The calls on their way, then the cohort of the held put and the late one, which left
	// the late one out, then the last put's: one put each.
	sizes := g.callSizes()
	if want := len(flying) + 2; len(sizes) != want || slices.ContainsFunc(sizes, func(n int) bool { return n != 1 }) {
		t.Errorf("store calls carried %v puts, want %d calls of one put each: the late put left out", sizes, want)
	}
	ids, err := rt.store.Pending(ctx, DefaultQueue, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Every job but the late one's: the firsts, then the last.
	if want := len(flying) + 2; len(ids) != want || ids[want-1] != last.ID() {
		t.Errorf("pending %v, want %d jobs, the last %s", ids, want, last.ID())
	}
}

// A program's actor puts jobs by message: each put is answered with a PutDone, and each job
// it asked to be notified of comes back as a JobCompleted with its outcome. A Go caller can
// ask for the notification too.
func TestPutByMessage(t *testing.T) {
	t.Parallel()
	sys, _ := programSystem(t)
	ctx := testCtx(t)
	rt := newRuntime(t, Config{ActorSystem: sys, UUID: "put-by-message", PollInterval: 20 * time.Millisecond})
	if err := rt.Handle("echo", Func1(func(_ context.Context, s string) (string, error) { return s, nil })); err != nil {
		t.Fatal(err)
	}
	if err := rt.Handle("fail", Func0(func(context.Context) (any, error) { return nil, errors.New("boom") })); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	q := rt.Queue(DefaultQueue)
	pid, err := q.PID()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sys.ProcessRegistry.GetLocal("zasync/queue/" + DefaultQueue); !ok {
		t.Fatal("no queue actor below zasync's root")
	}

	got := make(chan any, 16)
	calls := []Call{NewCall("echo", "hi"), NewCall("fail"), NewCall("echo", "no quota")}
	prog, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			for i, call := range calls {
				opts := []PutOption{Notify(c.Self())}
				if i == 2 {
					opts = append(opts, Quotas("missing"))
				}
				msg, err := q.PutMessage(call, opts...)
				if err != nil {
					got <- err
					return
				}
				msg.Tag = fmt.Sprint("put ", i)
				c.Request(pid, msg)
			}
		case *messages.PutDone, *messages.JobCompleted:
			got <- m
		}
	}), "putter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Root.PoisonFuture(prog).Wait() })

	// The answers come in the order of the puts; completions may come in between.
	var refs []Ref
	outcomes := map[Ref]*messages.JobCompleted{}
	for answered := 0; answered < len(calls); {
		switch m := await(t, ctx, got, "a put's answer").(type) {
		case *messages.JobCompleted:
			outcomes[Ref(m.Job)] = m
		case *messages.PutDone:
			if want := fmt.Sprint("put ", answered); m.Tag != want {
				t.Fatalf("answer %d tagged %q, want %q", answered, m.Tag, want)
			}
			if answered == 2 {
				if !errors.Is(m.Err, ErrUnknownQuota) {
					t.Fatalf("put naming an unknown quota answered %v, want ErrUnknownQuota", m.Err)
				}
			} else if m.Err != nil || len(m.Jobs) != 1 {
				t.Fatalf("put %d answered %v, %v", answered, m.Jobs, m.Err)
			} else {
				refs = append(refs, Ref(m.Jobs[0]))
			}
			answered++
		default:
			t.Fatalf("got %#v, want a PutDone or a JobCompleted", m)
		}
	}
	goJob, err := q.Put(ctx, NewCall("echo", "from Go"), Notify(prog))
	if err != nil {
		t.Fatal(err)
	}
	refs = append(refs, goJob.Ref())
	for len(outcomes) < 3 {
		m, ok := await(t, ctx, got, "a job's completion").(*messages.JobCompleted)
		if !ok {
			t.Fatalf("got %#v, want a JobCompleted", m)
		}
		outcomes[Ref(m.Job)] = m
	}
	for i, want := range []string{`"hi"`, "", `"from Go"`} {
		m := outcomes[refs[i]]
		switch {
		case m == nil:
			t.Errorf("no completion for %s", refs[i])
		case m.Err != nil || m.Status != persistence.StatusCompleted:
			t.Errorf("completion of %s: %s, %v", refs[i], m.Status, m.Err)
		case want == "" && (m.Failure == nil || m.Failure.Message != "boom"):
			t.Errorf("completion of the failing job: failure %v, want boom", m.Failure)
		case want != "" && string(m.Result) != want:
			t.Errorf("completion of %s: result %s, want %s", refs[i], m.Result, want)
		}
	}
}

// PutMessage refuses what Put refuses, and what it cannot send: a composite, a nil PID.
func TestPutMessageBadInput(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	q := rt.Queue(DefaultQueue)
	for name, put := range map[string]func() (*messages.Put, error){
		"composite":    func() (*messages.Put, error) { return q.PutMessage(Serial(NewCall("a"))) },
		"zasync name":  func() (*messages.Put, error) { return q.PutMessage(NewCall("zasync.x")) },
		"nil notify":   func() (*messages.Put, error) { return q.PutMessage(NewCall("a"), Notify(nil)) },
		"negative due": func() (*messages.Put, error) { return q.PutMessage(NewCall("a"), BeginIn(-time.Second)) },
	} {
		if m, err := put(); !errors.Is(err, ErrInvalid) || m != nil {
			t.Errorf("%s: %v, %v; want ErrInvalid", name, m, err)
		}
	}
	m, err := q.PutMessage(NewCall("a", 1), BeginIn(time.Hour))
	if err != nil || len(m.Specs) != 1 || m.Specs[0].BeginIn != time.Hour || m.Specs[0].Call.String() != `a(1)` {
		t.Fatalf("PutMessage: %+v, %v", m, err)
	}
	if _, err := rt.Queue("bad:name").PID(); !errors.Is(err, ErrInvalid) {
		t.Errorf("PID of a bad queue name: %v, want ErrInvalid", err)
	}
	if rt.root != nil {
		t.Error("a bad queue name started zasync's actors")
	}
}

// Close stops the queue actors with zasync's root, and puts after it are refused; the
// notifications still awaited are dropped (goleak checks that their goroutines end).
func TestCloseStopsQueueActors(t *testing.T) {
	t.Parallel()
	sys, prog := programSystem(t)
	ctx := testCtx(t)
	rt := newRuntime(t, Config{ActorSystem: sys, UUID: "close-queues"})
	for _, name := range []string{"a", "b"} {
		if _, err := rt.Queue(name).Put(ctx, NewCall("never run"), Notify(prog)); err != nil {
			t.Fatal(err)
		}
		if _, ok := sys.ProcessRegistry.GetLocal("zasync/queue/" + name); !ok {
			t.Fatalf("no queue actor for %s", name)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, ok := sys.ProcessRegistry.GetLocal("zasync/queue/" + name); ok {
			t.Errorf("queue actor %s still runs after Close", name)
		}
	}
	if _, err := rt.Queue("a").Put(ctx, NewCall("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if _, err := rt.Queue("a").PID(); !errors.Is(err, ErrClosed) {
		t.Errorf("PID after Close: %v, want ErrClosed", err)
	}
}

// Close refuses the puts held for the next cohort (nothing written) and answers the put on
// its way with what the store did, before it closes the store.
func TestCloseAnswersHeldPuts(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	g := gate(t, rt)
	held := heldCounts(rt)
	q := rt.Queue(DefaultQueue)

	flying, firstHeld := fillCalls(t, ctx, q, g, held, "first")
	const n = 3
	refused := make(chan error, n)
	for i := range n {
		go func() {
			_, err := q.Put(ctx, NewCall("held", i))
			refused <- err
		}()
	}
	awaitHeld(t, ctx, held, n+1)

	closed := make(chan error, 1)
	go func() { closed <- rt.Close() }()
	for range n {
		if err := await(t, ctx, refused, "a held put's answer"); !errors.Is(err, ErrClosed) {
			t.Errorf("held put at Close: %v, want ErrClosed", err)
		}
	}
	if err := await(t, ctx, firstHeld, "a held put's answer"); !errors.Is(err, ErrClosed) {
		t.Errorf("held put at Close: %v, want ErrClosed", err)
	}
	g.open()
	awaitAll(t, ctx, flying, "the put on its way")
	if err := await(t, ctx, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	if got := g.callSizes(); len(got) != len(flying) {
		t.Errorf("store calls carried %v puts, want %d calls: the held puts refused", got, len(flying))
	}
}

// A job put with a BeginIn through the queue actor is scheduled by the store's clock.
func TestPutBeginInThroughQueueActor(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	before, err := rt.store.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := rt.Queue(DefaultQueue).PutMany(ctx, []Call{NewCall("a"), NewCall("b")}, BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		rec := mustInfo(t, j)
		if d := rec.BeginAfter.Sub(before); d < time.Hour || d > time.Hour+time.Minute {
			t.Errorf("%s begins %s after the put, want an hour", j, d)
		}
	}
}

// Callers that give up at any moment (before their put is held, while it is held, while they
// are handed their cohort to carry, while they carry it) never wedge the queue: the puts of
// those who wait are all made, and every put answered with a job was written.
func TestPutCallersGivingUp(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	const producers, each = 8, 60
	var mu sync.Mutex
	var made []*Job
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				// Deadlines from nothing to a few round trips, so that some end at each step.
				pctx, cancel := context.WithTimeout(ctx, time.Duration((p*each+i)%23)*20*time.Microsecond)
				job, err := q.Put(pctx, NewCall("p", p, i))
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					made = append(made, job)
					mu.Unlock()
				case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
					t.Errorf("put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	// The queue still puts: no cohort was dropped with its caller.
	if _, err := q.Put(ctx, NewCall("last")); err != nil {
		t.Fatalf("put after callers gave up: %v", err)
	}
	for _, j := range made {
		if rec := mustInfo(t, j); rec.Status != StatusPending {
			t.Fatalf("%s answered as put is %s", j, rec.Status)
		}
	}
	t.Logf("%d of %d puts made in time", len(made), producers*each)
}

// expiring is a context whose deadline passes when expire is called: its Done closes and its
// Err is context.DeadlineExceeded from then on, as at a deadline a test chose the moment of.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newExpiring(parent context.Context) *expiring {
	return &expiring{Context: parent, done: make(chan struct{})}
}

func (e *expiring) expire() { e.once.Do(func() { close(e.done) }) }

func (e *expiring) Done() <-chan struct{} { return e.done }

func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

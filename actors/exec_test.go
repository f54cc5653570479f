package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
)

// handlerMap is a Handlers for tests.
type handlerMap map[string]Handler

func (m handlerMap) Handler(name string) (Handler, bool) { h, ok := m[name]; return h, ok }

// testStore returns a store on miniredis, or on the real Redis at ZASYNC_TEST_REDIS under a
// key prefix of the test's own, whose keys are deleted at the end (never a FLUSHDB).
func testStore(t *testing.T) persistence.Store {
	t.Helper()
	var rdb *redis.Client
	prefix := "zasync"
	if addr := testredis.Addr(); addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		prefix = testredis.Prefix("actors")
		testredis.DeleteAtCleanup(t, addr, prefix)
	} else {
		m := miniredis.RunT(t)
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
	}
	s, err := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// execFixture is a store on miniredis (or the real Redis of ZASYNC_TEST_REDIS), an activated dispatcher "d1" with agent "main", and
// an executor with the given handlers.
type execFixture struct {
	t     *testing.T
	ctx   context.Context
	store persistence.Store
	exec  *executor
	logs  *testlog.Recorder
	h     handlerMap
	agent persistence.Owner
}

func newExecFixture(t *testing.T) *execFixture {
	t.Helper()
	s := testStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	f := &execFixture{t: t, ctx: ctx, store: s, logs: &testlog.Recorder{}, h: handlerMap{}, agent: persistence.Owner{Dispatcher: "d1", Agent: "main"}}
	f.exec = testExecutor(t, ctx, Options{Store: s, Handlers: f.h, Policies: persistence.NewRetryPolicies(), Logger: slog.New(f.logs)})
	f.activate("d1")
	return f
}

func (f *execFixture) activate(uuid string) {
	f.t.Helper()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 10}}}
	if err := f.store.Register(f.ctx, "q", uuid, cfg); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.Activate(f.ctx, "q", uuid); err != nil {
		f.t.Fatal(err)
	}
}

// put puts a call to handler with args.
func (f *execFixture) put(handler string, args ...any) *persistence.Job {
	f.t.Helper()
	return f.putSpec(persistence.JobSpec{Call: callTo(handler, args...)})
}

func (f *execFixture) putSpec(spec persistence.JobSpec) *persistence.Job {
	f.t.Helper()
	j, err := f.store.Put(f.ctx, "q", spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func callTo(handler string, args ...any) persistence.Call {
	c := persistence.Call{Handler: handler}
	for _, a := range args {
		b, _ := json.Marshal(a)
		c.Args = append(c.Args, b)
	}
	return c
}

// claim claims the next job for d1/main, which must be want (or anything when want is "").
func (f *execFixture) claim(want string) *persistence.Job {
	f.t.Helper()
	jobs, err := f.store.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: f.agent.Dispatcher, Agent: f.agent.Agent, Size: 10, Max: 1})
	if err != nil || len(jobs) != 1 {
		f.t.Fatalf("Claim: %v %v, want one job", jobs, err)
	}
	if want != "" && jobs[0].ID != want {
		f.t.Fatalf("claimed %s (%s), want %s", jobs[0].ID, jobs[0].Call.Handler, want)
	}
	return jobs[0]
}

// runNext claims the next job and runs it.
func (f *execFixture) runNext(want string) Result {
	f.t.Helper()
	return f.exec.run(f.ctx, f.claim(want))
}

func (f *execFixture) get(ref persistence.Ref) *persistence.Job {
	f.t.Helper()
	j, err := f.store.Get(f.ctx, ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func TestExecSuccess(t *testing.T) {
	f := newExecFixture(t)
	f.h["add"] = func(ctx context.Context, c *persistence.Call) (any, error) {
		var a, b int
		json.Unmarshal(c.Args[0], &a)
		json.Unmarshal(c.Args[1], &b)
		if r, ok := RunningFrom(ctx); !ok || r.Job.Call.Handler != "add" {
			t.Errorf("RunningFrom in the handler: %v %v", r, ok)
		}
		return a + b, nil
	}
	j := f.put("add", 40, 2)
	r := f.runNext(j.ID)
	if r.Ending != Finished || r.Job.Status != persistence.StatusCompleted || string(r.Job.Result) != "42" {
		t.Fatalf("run: %v %s %s, want finished COMPLETED 42", r.Ending, r.Job.Status, r.Job.Result)
	}
	// The record names the job in attributes, and leaves out its arguments and result.
	rec, ok := f.logs.Find(slog.LevelInfo, "succeeded")
	if !ok {
		t.Fatalf("no INFO success log")
	}
	if want := "<zasync.Job " + j.Ref.String() + " add> succeeded"; rec.Message != want {
		t.Fatalf("the success log %q, want %q: no arguments, no result", rec.Message, want)
	}
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	want := map[string]string{"job": j.Ref.String(), "queue": "q", "handler": "add", "attempt": "1", "dispatcher": "d1", "agent": "main"}
	for k, v := range want {
		if attrs[k] != v {
			t.Fatalf("the success log's %s: %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}

	// With LogArguments, zc.async's text with the result.
	f.exec.logArgs = true
	j = f.put("add", 1, 2)
	f.runNext(j.ID)
	if _, ok := f.logs.Find(slog.LevelInfo, "add(1, 2)> succeeded with result: 3"); !ok {
		t.Fatalf("no INFO success log with the call and result")
	}
}

func TestExecFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler Handler
		kind    string
	}{
		{"error", func(context.Context, *persistence.Call) (any, error) { return nil, errors.New("nope") }, "errors.errorString"},
		{"panic", func(context.Context, *persistence.Call) (any, error) { panic("boom") }, "PanicError"},
		{"bad result", func(context.Context, *persistence.Call) (any, error) { return func() {}, nil }, "ValueError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newExecFixture(t)
			f.h["h"] = tc.handler
			j := f.put("h")
			r := f.runNext(j.ID)
			if r.Ending != Finished || !r.Job.Failed() || r.Job.Failure.Type != tc.kind || r.Job.Status != persistence.StatusCompleted {
				t.Fatalf("run: %v %+v, want COMPLETED with a %s failure", r.Ending, r.Job.Failure, tc.kind)
			}
			rec, ok := f.logs.Find(slog.LevelError, "failed with traceback")
			if !ok {
				t.Fatalf("no ERROR failure log")
			}
			// The traceback ends with what happened, also when there is no stack.
			if !strings.HasSuffix(rec.Message, r.Job.Failure.Error()) {
				t.Fatalf("failure log %q does not end with %q", rec.Message, r.Job.Failure.Error())
			}
			if tc.kind == "PanicError" && !strings.Contains(r.Job.Failure.Stack, "goroutine") {
				t.Fatalf("a panic's failure has no stack: %q", r.Job.Failure.Stack)
			}
		})
	}
}

func TestExecNoHandler(t *testing.T) {
	f := newExecFixture(t)
	j := f.put("missing")
	r := f.runNext(j.ID)
	if !r.Job.Failed() || !errors.Is(r.Job.Failure, persistence.ErrNoHandler) || !strings.Contains(r.Job.Failure.Message, `"missing"`) {
		t.Fatalf("failure %+v, want NoHandlerError naming the handler", r.Job.Failure)
	}
}

// Scenario 21: a conflict every time runs the handler 5 times, then keeps the conflict; a
// success on the 3rd call gives 42. Counters persist in the record.
func TestExecConflictRetries(t *testing.T) {
	for _, succeedAt := range []int{3, 0} {
		t.Run(fmt.Sprint("succeedAt=", succeedAt), func(t *testing.T) {
			f := newExecFixture(t)
			calls := 0
			f.h["h"] = func(context.Context, *persistence.Call) (any, error) {
				calls++
				if calls == succeedAt {
					return 42, nil
				}
				return nil, fmt.Errorf("write: %w", persistence.ErrConflict)
			}
			j := f.put("h")
			r := f.runNext(j.ID)
			if succeedAt == 3 {
				if calls != 3 || string(r.Job.Result) != "42" {
					t.Fatalf("calls %d result %s, want 3 and 42", calls, r.Job.Result)
				}
				return
			}
			if calls != persistence.MaxConflicts || !errors.Is(r.Job.Failure, persistence.ErrConflict) {
				t.Fatalf("calls %d failure %+v, want %d and a ConflictError", calls, r.Job.Failure, persistence.MaxConflicts)
			}
			if r.Job.Retry[persistence.CountConflicts] != persistence.MaxConflicts {
				t.Fatalf("stored counters %v", r.Job.Retry)
			}
			if _, ok := f.logs.Find(slog.LevelWarn, "requests another attempt after 1 counts of conflicts"); !ok {
				t.Fatalf("no retry WARNING log")
			}
		})
	}
}

// A job error the policy answers with a later time goes back to the queue, scheduled.
func TestExecRescheduledByPolicy(t *testing.T) {
	f := newExecFixture(t)
	f.exec.policies.Register(laterPolicy{})
	f.h["h"] = func(context.Context, *persistence.Call) (any, error) { return nil, errors.New("not yet") }
	j := f.putSpec(persistence.JobSpec{Call: callTo("h"), RetryPolicy: "later"})
	r := f.runNext(j.ID)
	if r.Ending != Rescheduled || r.Job.Status != persistence.StatusPending || r.Job.BeginAfter.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("run: %v %s after %s, want rescheduled an hour later", r.Ending, r.Job.Status, r.Job.BeginAfter)
	}
}

type laterPolicy struct{}

func (laterPolicy) Name() string { return "later" }
func (laterPolicy) JobError(error, persistence.RetryCounts) persistence.Decision {
	return persistence.RetryAfter(time.Hour)
}
func (laterPolicy) CommitError(error, persistence.RetryCounts) persistence.Decision {
	return persistence.Stop()
}
func (laterPolicy) Interrupted(persistence.RetryCounts) persistence.Decision {
	return persistence.Stop()
}

// Seed 000 at executor level: the job is taken away while its handler runs; the late commit
// is refused, the reassigned ERROR is logged with zc.async's words, and nothing is retried.
func TestExecReassigned(t *testing.T) {
	f := newExecFixture(t)
	release := make(chan struct{})
	started := make(chan struct{})
	calls := 0
	f.h["h"] = func(context.Context, *persistence.Call) (any, error) {
		calls++
		close(started)
		<-release
		return 42, nil
	}
	j := f.put("h")
	claimed := f.claim(j.ID)
	done := make(chan Result, 1)
	go func() { done <- f.exec.run(f.ctx, claimed) }()
	<-started
	if _, err := f.store.Deactivate(f.ctx, "q", "d1"); err != nil { // presumed dead
		t.Fatal(err)
	}
	close(release)
	r := <-done
	if r.Ending != Reassigned || calls != 1 {
		t.Fatalf("run: %v after %d calls, want reassigned after 1", r.Ending, calls)
	}
	rec, ok := f.logs.Find(slog.LevelError, "was reassigned.  Likely cause was that polling was unable to occur as regularly as expected, perhaps because of long commit times in the application.")
	if !ok || !strings.Contains(rec.Message, j.ID) {
		t.Fatalf("no reassigned ERROR naming the job")
	}
	if got := f.get(j.Ref); got.Status != persistence.StatusActive || got.Result != nil {
		t.Fatalf("job after the late commit: %s %s, want ACTIVE without result", got.Status, got.Result)
	}
}

// Callbacks run one after another with the parent's result as first argument; a success and
// failure pair picks its side; the parent completes after them.
func TestExecCallbacks(t *testing.T) {
	f := newExecFixture(t)
	var order []string
	record := func(name string) Handler {
		return func(_ context.Context, c *persistence.Call) (any, error) {
			order = append(order, name+":"+string(c.Args[0]))
			return name, nil
		}
	}
	f.h["work"] = func(context.Context, *persistence.Call) (any, error) { return 15, nil }
	f.h["first"], f.h["second"], f.h["onFailure"] = record("first"), record("second"), record("onFailure")
	j := f.put("work")
	var cbs []*persistence.Job
	for _, spec := range []persistence.JobSpec{
		{Call: callTo("first")},
		{Choice: &persistence.CallbackChoice{Success: &persistence.Call{Handler: "second"}, Failure: &persistence.Call{Handler: "onFailure"}}},
		{Choice: &persistence.CallbackChoice{Failure: &persistence.Call{Handler: "onFailure"}}},
	} {
		cb, _, err := f.store.AddCallback(f.ctx, j.Ref, spec)
		if err != nil {
			t.Fatal(err)
		}
		cbs = append(cbs, cb)
	}
	r := f.runNext(j.ID)
	if r.Ending != Finished || r.Job.Status != persistence.StatusCompleted {
		t.Fatalf("run: %v %s, want finished COMPLETED", r.Ending, r.Job.Status)
	}
	if !slices.Equal(order, []string{"first:15", "second:15"}) {
		t.Fatalf("callbacks ran %v, want first then second, each given 15", order)
	}
	for i, want := range []string{`"first"`, `"second"`, `15`} {
		cb := f.get(cbs[i].Ref)
		if cb.Status != persistence.StatusCompleted || string(cb.Result) != want {
			t.Fatalf("callback %d: %s %s, want COMPLETED %s (the pass-through keeps the parent's result)", i, cb.Status, cb.Result, want)
		}
	}
}

// A handler returning an inner job makes its job wait, parked, and take the inner result.
func TestExecInnerJob(t *testing.T) {
	f := newExecFixture(t)
	var inner *persistence.Job
	f.h["outer"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		var err error
		inner, err = r.Store.Put(ctx, "q", persistence.JobSpec{Call: callTo("inner")})
		return &Inner{Ref: inner.Ref}, err
	}
	f.h["inner"] = func(context.Context, *persistence.Call) (any, error) { return 42, nil }
	outer := f.put("outer")
	r := f.runNext(outer.ID)
	if r.Ending != Waiting || r.Job.Status != persistence.StatusActive || !r.Job.Parked || r.Job.WaitingOn != inner.ID {
		t.Fatalf("outer run: %v %s parked=%v waiting on %q, want waiting, ACTIVE, parked on %s", r.Ending, r.Job.Status, r.Job.Parked, r.Job.WaitingOn, inner.ID)
	}
	r = f.runNext(inner.ID)
	if r.Ending != Finished || string(r.Job.Result) != "42" {
		t.Fatalf("inner run: %v %s", r.Ending, r.Job.Result)
	}
	got := f.get(outer.Ref)
	if got.Status != persistence.StatusCompleted || string(got.Result) != "42" {
		t.Fatalf("outer: %s %s, want COMPLETED with the inner result 42", got.Status, got.Result)
	}
	if held, _ := f.store.AgentJobs(f.ctx, "q", f.agent); len(held) != 0 {
		t.Fatalf("the agent still holds %v", held)
	}
}

// Scenario 45 at executor level: an interrupted job gets a handleInterrupt job when its
// dispatcher is cleaned; running it puts the job back at the front; it then completes, and
// its interruption is counted.
func TestExecHandleInterrupt(t *testing.T) {
	f := newExecFixture(t)
	first := true
	started := make(chan struct{})
	f.h["h"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		if first {
			first = false
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return 42, nil
	}
	j := f.put("h")
	other := f.put("other")
	claimed := f.claim(j.ID)
	runCtx, interrupt := context.WithCancel(f.ctx)
	done := make(chan Result, 1)
	go func() { done <- f.exec.run(runCtx, claimed) }()
	<-started
	interrupt()
	if r := <-done; r.Ending != Interrupted {
		t.Fatalf("run: %v, want interrupted", r.Ending)
	}
	report, err := f.store.Deactivate(f.ctx, "q", "d1")
	if err != nil || !slices.Equal(report.Interrupted, []string{j.ID}) {
		t.Fatalf("Deactivate: %+v %v", report, err)
	}
	f.agent = persistence.Owner{Dispatcher: "d2", Agent: "main"}
	f.activate("d2")
	f.h["other"] = func(context.Context, *persistence.Call) (any, error) { return nil, nil }
	// The system job is at the head of the queue, ahead of the job put before the cleaning.
	sys := f.claim("")
	if sys.Call.Handler != persistence.HandlerHandleInterrupt || sys.Target != j.ID {
		t.Fatalf("next job %s → %s, want handleInterrupt of %s", sys.Call.Handler, sys.Target, j.ID)
	}
	if r := f.exec.run(f.ctx, sys); r.Ending != Finished || r.Job.Status != persistence.StatusCompleted {
		t.Fatalf("handleInterrupt: %v", r.Ending)
	}
	if p, _ := f.store.Pending(f.ctx, "q", 0, 10); !slices.Equal(p, []string{j.ID, other.ID}) {
		t.Fatalf("queue %v, want the interrupted job put back at the head", p)
	}
	if r := f.runNext(j.ID); r.Ending != Finished || string(r.Job.Result) != "42" || r.Job.Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("rerun: %s counters %v, want 42 and one interruption", r.Job.Result, r.Job.Retry)
	}
	if r := f.runNext(other.ID); r.Ending != Finished {
		t.Fatalf("other: %v", r.Ending)
	}
}

// Scenarios 8 and 9: an expired job is handed out as a fail job; running it completes the job
// with TimeoutError and runs its callbacks.
func TestExecTimeout(t *testing.T) {
	f := newExecFixture(t)
	gotFailure := make(chan string, 1)
	f.h["onFailure"] = func(_ context.Context, c *persistence.Call) (any, error) {
		gotFailure <- string(c.Args[0])
		return nil, nil
	}
	j := f.putSpec(persistence.JobSpec{Call: callTo("never"), BeginAfter: time.Now().Add(-2 * time.Hour), BeginBy: time.Hour})
	if _, _, err := f.store.AddCallback(f.ctx, j.Ref, persistence.JobSpec{Choice: &persistence.CallbackChoice{Failure: &persistence.Call{Handler: "onFailure"}}}); err != nil {
		t.Fatal(err)
	}
	wrapper := f.claim("")
	if wrapper.Call.Handler != persistence.HandlerFail {
		t.Fatalf("claimed %s, want the fail job", wrapper.Call.Handler)
	}
	if r := f.exec.run(f.ctx, wrapper); r.Ending != Finished {
		t.Fatalf("fail job: %v %v", r.Ending, r.Err)
	}
	got := f.get(j.Ref)
	if got.Status != persistence.StatusCompleted || !persistence.IsKind(got.Failure, "TimeoutError") {
		t.Fatalf("expired job: %s %+v, want COMPLETED with TimeoutError", got.Status, got.Failure)
	}
	if f := <-gotFailure; !strings.Contains(f, "TimeoutError") {
		t.Fatalf("failure callback got %s", f)
	}
}

// A run rides out a store that is briefly unreachable: its store calls are retried (with a
// CRITICAL log) until the store answers again, and the job completes; nothing is left held.
func TestExecRidesOutAStoreOutage(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s, err := redisstore.New(rdb, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &execFixture{t: t, ctx: ctx, store: s, logs: &testlog.Recorder{}, h: handlerMap{}, agent: persistence.Owner{Dispatcher: "d1", Agent: "main"}}
	f.exec = testExecutor(t, ctx, Options{Store: s, Handlers: f.h, Policies: persistence.NewRetryPolicies(), Logger: slog.New(f.logs)})
	f.activate("d1")
	f.h["h"] = func(context.Context, *persistence.Call) (any, error) { return 42, nil }
	j := f.put("h")
	claimed := f.claim(j.ID)

	m.SetError("LOADING Redis is loading the dataset in memory") // the store goes away
	done := make(chan Result, 1)
	go func() { done <- f.exec.run(ctx, claimed) }()
	f.eventually("a CRITICAL retry log while the store is down", func() bool {
		_, ok := f.logs.Find(persistence.LevelCritical, "frequent database errors!  I retry forever...")
		return ok
	})
	m.SetError("") // and comes back
	r := <-done
	if r.Ending != Finished || string(r.Job.Result) != "42" || r.Job.Status != persistence.StatusCompleted {
		t.Fatalf("run: %v %v %+v, want the job completed with 42", r.Ending, r.Err, r.Job)
	}
}

// Scenario 33: resuming the callbacks of a job interrupted in CALLBACKS handles each by its
// status: a completed one is left alone, one in CALLBACKS has its own callbacks resumed, an
// interrupted ACTIVE one is retried by its policy, a new one runs; then the job completes.
func TestExecResumeCallbacksByStatus(t *testing.T) {
	f := newExecFixture(t)
	calls := map[string]int{}
	var mu sync.Mutex
	handler := func(name string, result int) Handler {
		return func(_ context.Context, c *persistence.Call) (any, error) {
			mu.Lock()
			calls[name]++
			mu.Unlock()
			return result, nil
		}
	}
	f.h["done"], f.h["sub"], f.h["active"], f.h["fresh"] = handler("done", 10), handler("sub", 80), handler("active", 50), handler("fresh", 60)
	f.h["inCallbacks"] = handler("inCallbacks", 20)
	parent := f.put("work")
	var cbs []*persistence.Job
	for _, h := range []string{"done", "inCallbacks", "active", "fresh"} {
		cb, _, err := f.store.AddCallback(f.ctx, parent.Ref, persistence.JobSpec{Call: callTo(h)})
		if err != nil {
			t.Fatal(err)
		}
		cbs = append(cbs, cb)
	}
	subCB, _, err := f.store.AddCallback(f.ctx, cbs[1].Ref, persistence.JobSpec{Call: callTo("sub")})
	if err != nil {
		t.Fatal(err)
	}
	// The parent's run got as far as its callbacks: it is in CALLBACKS.
	p := f.claim(parent.ID)
	p, _ = f.store.Start(f.ctx, p.Fence())
	p, err = f.store.Commit(f.ctx, p.Fence(), persistence.Outcome{Result: json.RawMessage(`1`)})
	if err != nil || p.Status != persistence.StatusCallbacks {
		t.Fatalf("parent: %v %v", p, err)
	}
	run := func(cb *persistence.Job, upTo persistence.Status) {
		a, err := f.store.Adopt(f.ctx, p.Fence(), cb.ID, persistence.StatusNew)
		if err != nil {
			t.Fatal(err)
		}
		a, _ = f.store.Start(f.ctx, a.Fence())
		if upTo == persistence.StatusActive {
			return
		}
		a, _ = f.store.Commit(f.ctx, a.Fence(), persistence.Outcome{Result: json.RawMessage(`10`)})
		if upTo == persistence.StatusCompleted {
			f.store.Complete(f.ctx, a.Fence(), len(a.Callbacks))
		}
	}
	run(cbs[0], persistence.StatusCompleted)
	run(cbs[1], persistence.StatusCallbacks)
	run(cbs[2], persistence.StatusActive)
	// The dispatcher dies: the parent gets a resumeCallbacks job, which another runs.
	if _, err := f.store.Deactivate(f.ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	f.agent = persistence.Owner{Dispatcher: "d2", Agent: "main"}
	f.activate("d2")
	sys := f.claim("")
	if sys.Call.Handler != persistence.HandlerResumeCallbacks || sys.Target != parent.ID {
		t.Fatalf("claimed %s for %s, want resumeCallbacks for the parent", sys.Call.Handler, sys.Target)
	}
	if r := f.exec.run(f.ctx, sys); r.Ending != Finished {
		t.Fatalf("resumeCallbacks: %v %v", r.Ending, r.Err)
	}
	if got := f.get(parent.Ref); got.Status != persistence.StatusCompleted {
		t.Fatalf("parent %s, want COMPLETED", got.Status)
	}
	for i, want := range []string{"10", "10", "50", "60"} {
		if got := f.get(cbs[i].Ref); got.Status != persistence.StatusCompleted || string(got.Result) != want {
			t.Fatalf("callback %d: %s %s, want COMPLETED %s", i, got.Status, got.Result, want)
		}
	}
	if got := f.get(subCB.Ref); got.Status != persistence.StatusCompleted || string(got.Result) != "80" {
		t.Fatalf("the sub-callback: %s %s, want COMPLETED 80", got.Status, got.Result)
	}
	if calls["done"] != 0 || calls["inCallbacks"] != 0 || calls["active"] != 1 || calls["fresh"] != 1 || calls["sub"] != 1 {
		t.Fatalf("handlers ran %v: the completed and committed ones never, the others once", calls)
	}
	if got := f.get(cbs[2].Ref); got.Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("the interrupted callback's counters %v, want one interruption", got.Retry)
	}
}

// testExecutor is newExecutor with a committer of its own, in an actor system stopped with
// the test.
func testExecutor(t *testing.T, ctx context.Context, o Options) *executor {
	t.Helper()
	e := newExecutor(ctx, o)
	e.commits = startTestCommitter(t, ctx, o.Store, e.op, lingerMax)
	return e
}

package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// putComposite creates a composite of kind NEW over a NEW postprocess, adds the sub-jobs as
// its children and puts it in its queue, as the runtime does.
func (f *execFixture) putComposite(kind string, subs []persistence.Call, post persistence.Call) *persistence.Job {
	f.t.Helper()
	pj, err := f.store.Create(f.ctx, "q", persistence.JobSpec{Call: post})
	if err != nil {
		f.t.Fatal(err)
	}
	comp, err := f.store.Create(f.ctx, "q", persistence.JobSpec{Call: CompositeCall(kind, pj.ID)})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range subs {
		if _, _, err := f.store.AddChild(f.ctx, comp.Ref, persistence.JobSpec{Call: c}); err != nil {
			f.t.Fatal(err)
		}
	}
	comp, err = f.store.Enqueue(f.ctx, comp.Ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return comp
}

func subJobs(t *testing.T, c *persistence.Call) []SubJob {
	var out []SubJob
	for _, a := range c.Args {
		var s SubJob
		if err := json.Unmarshal(a, &s); err != nil {
			t.Errorf("postprocess argument %s: %v", a, err)
		}
		out = append(out, s)
	}
	return out
}

// Scenario 35, on an agent of size 1: the sub-jobs run one after another, the postprocess
// gets their outcomes in order, and the composite's result is the postprocess's. The waiting
// composite is parked, so the single slot is free for its sub-jobs.
func TestCompositeSerialOnSizeOne(t *testing.T) {
	f := newExecFixture(t)
	var mu sync.Mutex
	var order []int
	f.h["step"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var n int
		json.Unmarshal(c.Args[0], &n)
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
		return n, nil
	}
	f.h["post"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var got []any
		for _, s := range subJobs(t, c) {
			var v any
			json.Unmarshal(s.Result, &v)
			got = append(got, v)
		}
		return got, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("step", 0), callTo("step", 1), callTo("step", 2)}, callTo("post"))
	n := f.startNode(f.nodeOptions("n1", 1, 50*time.Millisecond))
	defer f.stopNode(n)
	done := f.waitDone(sub, comp.ID)[comp.ID]
	if string(done.Result) != "[0,1,2]" {
		t.Fatalf("serial result %s, want [0,1,2]", done.Result)
	}
	if !slices.Equal(order, []int{0, 1, 2}) {
		t.Fatalf("sub-jobs ran %v, want in order", order)
	}
}

// Scenario 36 with the default postprocess: the composite's result lists its sub-jobs'
// outcomes; a failed sub-job is there as a failure.
func TestCompositeParallelCollect(t *testing.T) {
	f := newExecFixture(t)
	f.h["times7"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var n int
		json.Unmarshal(c.Args[0], &n)
		if n == 0 {
			return nil, fmt.Errorf("zero")
		}
		return 7 * n, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerParallel, []persistence.Call{callTo("times7", 1), callTo("times7", 2), callTo("times7", 0)},
		persistence.Call{Handler: HandlerCollect})
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	done := f.waitDone(sub, comp.ID)[comp.ID]
	var got []SubJob
	if err := json.Unmarshal(done.Result, &got); err != nil || len(got) != 3 {
		t.Fatalf("parallel result %s: %v", done.Result, err)
	}
	if string(got[0].Result) != "7" || string(got[1].Result) != "14" || got[2].Failure == nil || got[2].Failure.Message != "zero" {
		t.Fatalf("parallel outcomes %+v, want 7, 14 and the failure", got)
	}
}

// Seed 004 (reference scenario 38), for serial and for parallel: a clean stop during a
// sub-job leaves exactly two handleInterrupt jobs, for the composite and for the sub-job, both
// ACTIVE; a restart and a stop during the postprocess leave again exactly two, for the
// composite and the postprocess; a last restart completes the composite with 42.
func TestCompositeInterruptedTwice(t *testing.T) {
	for _, kind := range []string{HandlerSerial, HandlerParallel} {
		t.Run(kind, func(t *testing.T) {
			f := newExecFixture(t)
			f.h["normal_component"] = func(context.Context, *persistence.Call) (any, error) { return 25, nil }
			componentStarted, postStarted := make(chan struct{}, 1), make(chan struct{}, 1)
			var componentFirst, postFirst atomic.Bool
			componentFirst.Store(true)
			postFirst.Store(true)
			f.h["pause_component"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
				if componentFirst.Swap(false) {
					componentStarted <- struct{}{}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return 17, nil
			}
			f.h["pause_postprocess"] = func(ctx context.Context, c *persistence.Call) (any, error) {
				if postFirst.Swap(false) {
					postStarted <- struct{}{}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				sum := 0
				for _, s := range subJobs(t, c) {
					var n int
					json.Unmarshal(s.Result, &n)
					sum += n
				}
				return sum, nil
			}
			parts := []persistence.Call{callTo("normal_component"), callTo("pause_component")}
			if kind == HandlerParallel {
				parts = []persistence.Call{callTo("pause_component"), callTo("normal_component")}
			}
			comp := f.putComposite(kind, parts, callTo("pause_postprocess"))
			kids := f.get(comp.Ref).Children
			normalID, pauseID := kids[0], kids[1]
			if kind == HandlerParallel {
				normalID, pauseID = kids[1], kids[0]
			}
			post := func() string { c := f.get(comp.Ref); k, _ := compositeOf(&c.Call); return k.Postprocess }()
			// INTERRUPT 1: during pause_component, stopped as soon as it has started (in
			// parallel, once normal_component has completed), as the seed does.
			n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
			if kind == HandlerParallel {
				f.eventually("normal_component completed", func() bool {
					return f.get(comp.Ref.In(normalID)).Status == persistence.StatusCompleted
				})
			}
			<-componentStarted
			f.stopNode(n)
			f.wantTwoInterrupts(comp.ID, pauseID)

			// INTERRUPT 2: during the postprocess, stopped as soon as it has started.
			n = f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
			<-postStarted
			f.stopNode(n)
			f.wantTwoInterrupts(comp.ID, post)

			sub := f.completions()
			n = f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
			defer f.stopNode(n)
			defer func() {
				if t.Failed() {
					for _, id := range []string{comp.ID, pauseID, post} {
						j := f.get(persistence.Ref{Queue: "q", ID: id})
						t.Logf("job %s %s %s owner %s waiting %s callbacks %v result %s", id, j.Call.Handler, j.Status, j.Owner, j.WaitingOn, j.Callbacks, j.Result)
					}
				}
			}()
			if got := string(f.waitDone(sub, comp.ID)[comp.ID].Result); got != "42" {
				t.Fatalf("composite result %s, want 42", got)
			}
		})
	}
}

// wantTwoInterrupts checks that the queue holds exactly the seed's two jobs: a
// handleInterrupt job for the composite, then one for inner (the order in which the stopped
// agent claimed them), and that both targets are ACTIVE.
func (f *execFixture) wantTwoInterrupts(composite, inner string) {
	f.t.Helper()
	pending, err := f.store.Pending(f.ctx, "q", 0, 10)
	if err != nil {
		f.t.Fatal(err)
	}
	jobs, err := f.store.GetMany(f.ctx, "q", pending)
	if err != nil {
		f.t.Fatal(err)
	}
	got := make([]string, len(jobs))
	for i, j := range jobs {
		got[i] = j.Call.Handler + "(" + j.Target + ")"
	}
	want := []string{persistence.HandlerHandleInterrupt + "(" + composite + ")", persistence.HandlerHandleInterrupt + "(" + inner + ")"}
	if !slices.Equal(got, want) {
		f.t.Fatalf("the queue holds %v, want exactly %v", got, want)
	}
	for _, id := range []string{composite, inner} {
		if j := f.get(persistence.Ref{Queue: "q", ID: id}); j.Status != persistence.StatusActive {
			f.t.Fatalf("job %s is %s, want ACTIVE", id, j.Status)
		}
	}
}

// Scenario 36's partial: a postprocess with its own argument receives it first, then the
// sub-jobs (zc.async's Job(p, 'foo') gets ('foo', *jobs)); a callback likewise gets its own
// arguments, then the parent's result.
func TestArgumentOrder(t *testing.T) {
	f := newExecFixture(t)
	f.h["n"] = func(_ context.Context, c *persistence.Call) (any, error) { return json.RawMessage(c.Args[0]), nil }
	f.h["label"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var label string
		json.Unmarshal(c.Args[0], &label)
		sum := 0
		for _, s := range subJobs(t, &persistence.Call{Args: c.Args[1:]}) {
			var n int
			json.Unmarshal(s.Result, &n)
			sum += n
		}
		return []any{label, sum}, nil
	}
	got := make(chan string, 1)
	f.h["mail"] = func(_ context.Context, c *persistence.Call) (any, error) {
		got <- string(c.Args[0]) + " " + string(c.Args[1])
		return nil, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerParallel, []persistence.Call{callTo("n", 7), callTo("n", 14), callTo("n", 21)}, callTo("label", "foo"))
	if _, _, err := f.store.AddCallback(f.ctx, comp.Ref, persistence.JobSpec{Call: callTo("mail", "ada@example.com")}); err != nil {
		t.Fatal(err)
	}
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	if r := string(f.waitDone(sub, comp.ID)[comp.ID].Result); r != `["foo",42]` {
		t.Fatalf("postprocess result %s, want [\"foo\",42]", r)
	}
	if m := <-got; m != `"ada@example.com" ["foo",42]` {
		t.Fatalf("callback arguments %s, want its own then the result", m)
	}
}

// Scenario 37: a serial composite's job list grows while it runs. Its first
// sub-job appends a second from its handler and gives that second a callback which, running
// before the second's completion moves the composite on, appends a third. All three run in
// order, and the postprocess receives the three outcomes.
func TestAddSubJobSerialGrows(t *testing.T) {
	f := newExecFixture(t)
	var mu sync.Mutex
	var ran []string
	step := func(name string) Handler {
		return func(context.Context, *persistence.Call) (any, error) {
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			return name, nil
		}
	}
	f.h["second"], f.h["third"] = step("second"), step("third")
	f.h["first"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		second, err := AddSubJob(ctx, r.Store, r.Job.Ref.In(r.Job.Composite), persistence.JobSpec{Call: callTo("second")})
		if err != nil {
			return nil, err
		}
		if _, _, err := r.Store.AddCallback(ctx, second.Ref, persistence.JobSpec{Call: callTo("appendThird")}); err != nil {
			return nil, err
		}
		return step("first")(ctx, nil)
	}
	f.h["appendThird"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx) // a callback of the second sub-job: its parent knows the composite
		_, err := AddSubJob(ctx, r.Store, r.Job.Ref.In(r.Parent.Composite), persistence.JobSpec{Call: callTo("third")})
		return nil, err
	}
	f.h["names"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var got []string
		for _, s := range subJobs(t, c) {
			var v string
			json.Unmarshal(s.Result, &v)
			got = append(got, v)
		}
		return got, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("first")}, callTo("names"))
	n := f.startNode(f.nodeOptions("n1", 1, 50*time.Millisecond))
	defer f.stopNode(n)
	done := f.waitDone(sub, comp.ID)[comp.ID]
	if string(done.Result) != `["first","second","third"]` {
		t.Fatalf("composite result %s, want [\"first\",\"second\",\"third\"]", done.Result)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ran, []string{"first", "second", "third"}) {
		t.Fatalf("sub-jobs ran %v, want first, second, third in order", ran)
	}
	if c := f.get(comp.Ref); len(c.Children) != 3 || !c.Sealed {
		t.Fatalf("composite children %v sealed %v, want three, sealed", c.Children, c.Sealed)
	}
}

// A sub-job appended to a running parallel composite is queued at once: it runs while the
// sub-job that appended it still runs (which waits for it), and its outcome reaches the
// postprocess after the others'.
func TestAddSubJobParallelQueuedAtOnce(t *testing.T) {
	f := newExecFixture(t)
	bRan := make(chan struct{})
	f.h["a"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		if _, err := AddSubJob(ctx, r.Store, r.Job.Ref.In(r.Job.Composite), persistence.JobSpec{Call: callTo("b")}); err != nil {
			return nil, err
		}
		select {
		case <-bRan:
			return "a", nil
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("the appended sub-job did not run while its sibling ran")
		}
	}
	f.h["b"] = func(context.Context, *persistence.Call) (any, error) { close(bRan); return "b", nil }
	sub := f.completions()
	comp := f.putComposite(HandlerParallel, []persistence.Call{callTo("a")}, persistence.Call{Handler: HandlerCollect})
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	done := f.waitDone(sub, comp.ID)[comp.ID]
	var got []SubJob
	if err := json.Unmarshal(done.Result, &got); err != nil || len(got) != 2 {
		t.Fatalf("parallel result %s: %v, want two outcomes", done.Result, err)
	}
	if string(got[0].Result) != `"a"` || string(got[1].Result) != `"b"` {
		t.Fatalf("parallel outcomes %s, want a then b", done.Result)
	}
}

// Once the composite has handed its sub-jobs over (its postprocess runs, or it completed),
// appending is refused with ErrBadStatus and nothing is added; a job that is not a composite
// gives ErrInvalid.
func TestAddSubJobTooLate(t *testing.T) {
	f := newExecFixture(t)
	f.h["one"] = func(context.Context, *persistence.Call) (any, error) { return 1, nil }
	postRuns, release := make(chan struct{}), make(chan struct{})
	f.h["post"] = func(context.Context, *persistence.Call) (any, error) {
		close(postRuns)
		<-release
		return "done", nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("one")}, callTo("post"))
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	wantRefused := func(when string) {
		t.Helper()
		before := f.get(comp.Ref).Children
		if _, err := AddSubJob(f.ctx, f.store, comp.Ref, persistence.JobSpec{Call: callTo("one")}); !errors.Is(err, persistence.ErrBadStatus) {
			t.Fatalf("AddSubJob %s: %v, want ErrBadStatus", when, err)
		}
		if after := f.get(comp.Ref).Children; !slices.Equal(after, before) {
			t.Fatalf("a refused AddSubJob %s changed the children: %v, was %v", when, after, before)
		}
	}
	<-postRuns
	wantRefused("while the postprocess runs")
	close(release)
	f.waitDone(sub, comp.ID)
	wantRefused("after the composite completed")

	plain := f.put("one")
	if _, err := AddSubJob(f.ctx, f.store, plain.Ref, persistence.JobSpec{Call: callTo("one")}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("AddSubJob to a job that is not a composite: %v, want ErrInvalid", err)
	}
}

// A sub-job appended while the composite's last step hands the sub-jobs over is either seen
// by that step (the postprocess waits for it) or refused: never added and left out. Each
// round races the step against AddSubJob, or against a bare AddChild, which skips
// AddSubJob's early check and leaves the store's seal alone to decide.
func TestAddSubJobRacesTheHandOver(t *testing.T) {
	f := newExecFixture(t)
	for round := range 40 {
		comp := f.putComposite(HandlerParallel, []persistence.Call{callTo("one")}, persistence.Call{Handler: HandlerCollect})
		claimed, err := f.store.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: f.agent.Dispatcher, Agent: f.agent.Agent,
			Size: 1000, Filter: func(j *persistence.Job) bool { return j.ID == comp.ID }})
		if err != nil || len(claimed) != 1 {
			t.Fatalf("round %d: claim the composite: %v %v", round, claimed, err)
		}
		if _, err := f.store.Start(f.ctx, claimed[0].Fence()); err != nil {
			t.Fatal(err)
		}
		first := f.get(comp.Ref).Children[0]
		if _, err := f.store.Fail(f.ctx, comp.Ref.In(first), nil, persistence.NewFailure(errors.New("done"), "")); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var stepErr, addErr error
		var wg sync.WaitGroup
		wg.Go(func() { <-start; stepErr = advance(f.ctx, f.store, comp.Ref, false) })
		wg.Go(func() {
			<-start
			spec := persistence.JobSpec{Call: callTo("one")}
			if round%2 == 0 {
				_, addErr = AddSubJob(f.ctx, f.store, comp.Ref, spec)
			} else {
				_, _, addErr = f.store.AddChild(f.ctx, comp.Ref, spec)
			}
		})
		close(start)
		wg.Wait()
		if stepErr != nil {
			t.Fatalf("round %d: the step: %v", round, stepErr)
		}
		c := f.get(comp.Ref)
		k, _ := compositeOf(&c.Call)
		post := f.get(comp.Ref.In(k.Postprocess))
		switch {
		case addErr == nil:
			if len(c.Children) != 2 || post.Status != persistence.StatusNew {
				t.Fatalf("round %d: appended, yet children %v and postprocess %s, want two and the postprocess still NEW", round, c.Children, post.Status)
			}
		case errors.Is(addErr, persistence.ErrBadStatus):
			if len(c.Children) != 1 || post.Status == persistence.StatusNew || len(post.Call.Args) != 1 {
				t.Fatalf("round %d: refused, yet children %v, postprocess %s with %d outcomes, want one, queued with one", round, c.Children, post.Status, len(post.Call.Args))
			}
		default:
			t.Fatalf("round %d: append: %v", round, addErr)
		}
	}
}

// A clean stop cancels the run of a part whose handler has returned while the part's own
// step (zasync.compositeNext) is under way: the step still runs to its end, so the part
// completes and the postprocess is queued, rather than the part being left in CALLBACKS
// for a resumeCallbacks job.
func TestCompositeStepOutlivesAnInterrupt(t *testing.T) {
	f := newExecFixture(t)
	f.h["one"] = func(context.Context, *persistence.Call) (any, error) { return 1, nil } // done before it sees the stop
	comp := f.putComposite(HandlerParallel, []persistence.Call{callTo("one")}, persistence.Call{Handler: HandlerCollect})
	if r := f.runNext(comp.ID); r.Ending != Waiting {
		t.Fatalf("the composite's run: %v (%v), want waiting", r.Ending, r.Err)
	}
	part := f.get(comp.Ref).Children[0]
	stopped, cancel := context.WithCancel(f.ctx)
	cancel()
	if r := f.exec.run(stopped, f.claim(part)); r.Ending != Finished {
		t.Fatalf("the part's run, interrupted: %v (%v), want finished", r.Ending, r.Err)
	}
	if s := f.get(comp.Ref.In(part)).Status; s != persistence.StatusCompleted {
		t.Fatalf("the part is %s, want COMPLETED", s)
	}
	k, _ := compositeOf(&comp.Call)
	if s := f.get(comp.Ref.In(k.Postprocess)).Status; s != persistence.StatusPending {
		t.Fatalf("the postprocess is %s, want PENDING", s)
	}
}

// After a stop, the restarted dispatcher recovers a composite and its interrupted part at
// once. A part that finishes before the composite runs again leaves the composite's next
// step to that run, whether the composite is still interrupted or already back in its
// queue: the postprocess never starts while the composite waits to run, and the composite
// completes all the same.
func TestCompositeStepLeavesTheNextStepToTheCompositesRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status persistence.Status // the composite's when its part finishes
	}{
		{"interrupted", persistence.StatusActive},
		{"put back", persistence.StatusPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newExecFixture(t)
			f.h["one"] = func(context.Context, *persistence.Call) (any, error) { return 1, nil }
			comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("one")}, persistence.Call{Handler: HandlerCollect})
			k, _ := compositeOf(&comp.Call)
			post := comp.Ref.In(k.Postprocess)
			if r := f.runNext(comp.ID); r.Ending != Waiting {
				t.Fatalf("the composite's run: %v (%v), want waiting", r.Ending, r.Err)
			}
			part := f.get(comp.Ref).Children[0]
			if _, err := f.store.Start(f.ctx, f.claim(part).Fence()); err != nil { // interrupted as it starts
				t.Fatal(err)
			}
			report, err := f.store.Deactivate(f.ctx, "q", "d1")
			if err != nil || len(report.SystemJobs) != 2 {
				t.Fatalf("stop: %+v %v, want two handleInterrupt jobs", report, err)
			}
			if _, err := f.store.Activate(f.ctx, "q", "d1"); err != nil {
				t.Fatal(err)
			}
			// The two recoveries, claimed together, the composite's first.
			recoverComp, recoverPart := f.claim(report.SystemJobs[0]), f.claim(report.SystemJobs[1])
			if tc.status == persistence.StatusPending {
				if r := f.exec.run(f.ctx, recoverComp); r.Ending != Finished {
					t.Fatalf("recovering the composite: %v (%v)", r.Ending, r.Err)
				}
			}
			if r := f.exec.run(f.ctx, recoverPart); r.Ending != Finished {
				t.Fatalf("recovering the part: %v (%v)", r.Ending, r.Err)
			}
			if r := f.exec.run(f.ctx, f.claimOnly(part)); r.Ending != Finished {
				t.Fatalf("the part's second run: %v (%v)", r.Ending, r.Err)
			}
			if s := f.get(comp.Ref).Status; s != tc.status {
				t.Fatalf("the composite is %s when its part finishes, want %s", s, tc.status)
			}
			if s := f.get(post).Status; s != persistence.StatusNew {
				t.Fatalf("the postprocess is %s before the composite runs again, want NEW", s)
			}

			if tc.status == persistence.StatusActive {
				if r := f.exec.run(f.ctx, recoverComp); r.Ending != Finished {
					t.Fatalf("recovering the composite: %v (%v)", r.Ending, r.Err)
				}
			}
			if r := f.runNext(comp.ID); r.Ending != Waiting {
				t.Fatalf("the composite's second run: %v (%v), want waiting", r.Ending, r.Err)
			}
			if r := f.runNext(post.ID); r.Ending != Finished {
				t.Fatalf("the postprocess: %v (%v)", r.Ending, r.Err)
			}
			done := f.get(comp.Ref)
			if done.Status != persistence.StatusCompleted {
				t.Fatalf("the composite is %s, want COMPLETED", done.Status)
			}
			var outs []SubJob
			if err := json.Unmarshal(done.Result, &outs); err != nil || len(outs) != 1 || string(outs[0].Result) != "1" {
				t.Fatalf("the composite's result %s (%v), want the part's outcome 1", done.Result, err)
			}
		})
	}
}

// claimOnly claims job id for d1/main, whatever waits before it in the queue.
func (f *execFixture) claimOnly(id string) *persistence.Job {
	f.t.Helper()
	jobs, err := f.store.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: f.agent.Dispatcher, Agent: f.agent.Agent,
		Size: 10, Max: 1, Filter: func(j *persistence.Job) bool { return j.ID == id }})
	if err != nil || len(jobs) != 1 {
		f.t.Fatalf("claim %s: %v %v, want it", id, jobs, err)
	}
	return jobs[0]
}

package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// Group "Callbacks": callbacks as the store keeps them: AddCallback creates a
// NEW job appended to its parent's callbacks, Complete refuses to finish a parent whose
// callbacks grew, a callback is run by adopting it; and live annotations, which never touch a
// job's fenced state.
func init() {
	register("Callbacks",
		testCase{"AddCallbackDefaults", cbkAddDefaults},
		testCase{"AddCallbackOverrides", cbkAddOverrides},
		testCase{"AddCallbackUnknownParent", cbkAddUnknownParent},
		testCase{"MoreCallbacks", cbkMoreCallbacks},
		testCase{"AddToCompleted", cbkAddToCompleted},
		testCase{"AdoptFences", cbkAdoptFences},
		testCase{"Annotations", cbkAnnotations},
		testCase{"RunAnnotationsFenced", cbkRunAnnotationsFenced},
	)
}

// cbkAdd adds a callback calling handler to parent and returns it with the parent's status.
func cbkAdd(b *bundle, parent persistence.Ref, handler string) (*persistence.Job, persistence.Status) {
	b.t.Helper()
	cb, st, err := b.s.AddCallback(b.ctx, parent, persistence.JobSpec{Call: call(handler)})
	if err != nil {
		b.t.Fatalf("AddCallback(%s, %s): %v", parent, handler, err)
	}
	return cb, st
}

// cbkRun runs callback cbID of the parent run pf by adopting it, to COMPLETED with result.
func cbkRun(b *bundle, pf persistence.Fence, cbID, result string) *persistence.Job {
	b.t.Helper()
	cb, err := b.s.Adopt(b.ctx, pf, cbID, persistence.StatusNew)
	if err != nil {
		b.t.Fatalf("Adopt(%s by %s): %v", cbID, pf.Ref, err)
	}
	if cb.ID != cbID || cb.Owner != pf.Owner {
		b.t.Fatalf("Adopt(%s by %s) = %s owner %s, want %s owner %s", cbID, pf.Ref, cb.ID, cb.Owner, cbID, pf.Owner)
	}
	f := cb.Fence()
	b.start(f)
	b.commit(f, result)
	done := b.complete(f, 0)
	if string(done.Result) != result {
		b.t.Fatalf("callback %s result %s, want %s", cbID, done.Result, result)
	}
	return done
}

func cbkAddDefaults(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := b.putCall("parent")
	var cbs []string
	for i, handler := range []string{"first", "second", "third"} {
		cb, st := cbkAdd(b, parent.Ref, handler)
		if st != persistence.StatusPending {
			t.Fatalf("AddCallback #%d: parent status %s, want pending", i, st)
		}
		if cb.Status != persistence.StatusNew || cb.Parent != parent.ID || cb.Queue != Queue || cb.Call.Handler != handler || cb.ID == parent.ID {
			t.Fatalf("callback #%d: %s status %s parent %q queue %q handler %q, want a new job, NEW, parent %s, queue %s, handler %s",
				i, cb.ID, cb.Status, cb.Parent, cb.Queue, cb.Call.Handler, parent.ID, Queue, handler)
		}
		if cb.RetryPolicy != persistence.RetryCommonForeverName || cb.FailureLogLevel != persistence.LevelCritical {
			t.Fatalf("callback #%d: policy %q level %v, want %s and LevelCritical", i, cb.RetryPolicy, cb.FailureLogLevel, persistence.RetryCommonForeverName)
		}
		stored := b.get(cb.Ref)
		if stored.Status != persistence.StatusNew || stored.Parent != parent.ID || stored.RetryPolicy != persistence.RetryCommonForeverName {
			t.Fatalf("stored callback #%d: status %s parent %q policy %q, want NEW, %s, %s", i, stored.Status, stored.Parent, stored.RetryPolicy, parent.ID, persistence.RetryCommonForeverName)
		}
		cbs = append(cbs, cb.ID)
	}
	if p := b.get(parent.Ref); !slices.Equal(p.Callbacks, cbs) || p.Status != persistence.StatusPending {
		t.Fatalf("parent: callbacks %v status %s, want %v in order and still pending", p.Callbacks, p.Status, cbs)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{parent.ID}) {
		t.Fatalf("queue: %v, want only the parent [%s] (callbacks are not queued)", p, parent.ID)
	}
}

func cbkAddOverrides(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := b.putCall("parent")
	level := slog.LevelWarn
	cb, _, err := b.s.AddCallback(b.ctx, parent.Ref, persistence.JobSpec{
		Call: call("cb"), RetryPolicy: persistence.NeverRetryName, FailureLogLevel: &level,
	})
	if err != nil {
		t.Fatalf("AddCallback with a policy and a level: %v", err)
	}
	if s := b.get(cb.Ref); s.RetryPolicy != persistence.NeverRetryName || s.FailureLogLevel != level {
		t.Fatalf("callback: policy %q level %v, want %s and %v as given", s.RetryPolicy, s.FailureLogLevel, persistence.NeverRetryName, level)
	}
	// A job put in a queue keeps the defaults of queued jobs.
	if parent.RetryPolicy != persistence.RetryCommonFourTimesName || parent.FailureLogLevel != slog.LevelError {
		t.Fatalf("queued job: policy %q level %v, want %s and ERROR", parent.RetryPolicy, parent.FailureLogLevel, persistence.RetryCommonFourTimesName)
	}
}

func cbkAddUnknownParent(t *testing.T, h Harness) {
	b := setup(t, h)
	_, _, err := b.s.AddCallback(b.ctx, persistence.Ref{Queue: Queue, ID: "nosuchjob"}, persistence.JobSpec{Call: call("cb")})
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("AddCallback to a missing parent: got %v, want ErrNotFound", err)
	}
}

func cbkMoreCallbacks(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	parent := b.putCall("parent")
	got := dspClaim(b, Queue, o, 3, 0)
	if !slices.Equal(ids(got), []string{parent.ID}) {
		t.Fatalf("claim: %v, want [%s]", ids(got), parent.ID)
	}
	pf := got[0].Fence()
	cb1, st := cbkAdd(b, parent.Ref, "cb1")
	if st != persistence.StatusAssigned {
		t.Fatalf("AddCallback to a claimed job: parent status %s, want assigned", st)
	}
	b.start(pf)
	p := b.commit(pf, `5`)
	if !slices.Equal(p.Callbacks, []string{cb1.ID}) {
		t.Fatalf("committed parent: callbacks %v, want [%s]", p.Callbacks, cb1.ID)
	}
	if _, err := b.s.Complete(b.ctx, pf, 0); !errors.Is(err, persistence.ErrMoreCallbacks) {
		t.Fatalf("Complete(seen 0) with one callback: got %v, want ErrMoreCallbacks", err)
	}
	if p := b.get(parent.Ref); p.Status != persistence.StatusCallbacks {
		t.Fatalf("parent after a refused Complete: %s, want callbacks", p.Status)
	}
	cbkRun(b, pf, cb1.ID, `6`)

	// A callback added while the parent runs its callbacks must run too.
	cb2, st := cbkAdd(b, parent.Ref, "cb2")
	if st != persistence.StatusCallbacks {
		t.Fatalf("AddCallback during callbacks: parent status %s, want callbacks", st)
	}
	if _, err := b.s.Complete(b.ctx, pf, 1); !errors.Is(err, persistence.ErrMoreCallbacks) {
		t.Fatalf("Complete(seen 1) with two callbacks: got %v, want ErrMoreCallbacks", err)
	}
	if p := b.get(parent.Ref); p.Status != persistence.StatusCallbacks || !slices.Equal(p.Callbacks, []string{cb1.ID, cb2.ID}) {
		t.Fatalf("parent after a second refused Complete: %s callbacks %v, want callbacks [%s %s]", p.Status, p.Callbacks, cb1.ID, cb2.ID)
	}
	cbkRun(b, pf, cb2.ID, `7`)
	// A finished callback cannot be adopted again.
	if _, err := b.s.Adopt(b.ctx, pf, cb1.ID, persistence.StatusNew); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Adopt(NEW only) of a completed callback: got %v, want ErrBadStatus", err)
	}
	done := b.complete(pf, 2)
	if string(done.Result) != "5" {
		t.Fatalf("completed parent result %s, want 5 (its own, not its callbacks')", done.Result)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 0 {
		t.Fatalf("agent after the parent completed: holds %v, want nothing", held)
	}
	if hist := dspHistory(b, Queue, o); !slices.Contains(hist, parent.ID) {
		t.Fatalf("agent history %v, want it to list the parent %s", hist, parent.ID)
	}
}

// Scenario 31: a callback added to a COMPLETED job is to be run at once by the caller.
func cbkAddToCompleted(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	parent := b.putCall("parent")
	got := dspClaim(b, Queue, o, 3, 0)
	dspFinish(b, got[0])
	cb, st := cbkAdd(b, parent.Ref, "late")
	if st != persistence.StatusCompleted {
		t.Fatalf("AddCallback to a completed job: parent status %s, want completed", st)
	}
	if cb.Status != persistence.StatusNew || cb.Parent != parent.ID {
		t.Fatalf("callback of a completed job: %s parent %q, want NEW with parent %s", cb.Status, cb.Parent, parent.ID)
	}
	p := b.get(parent.Ref)
	if p.Status != persistence.StatusCompleted || !slices.Equal(p.Callbacks, []string{cb.ID}) {
		t.Fatalf("completed parent: %s callbacks %v, want completed with [%s]", p.Status, p.Callbacks, cb.ID)
	}
}

func cbkAdoptFences(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	parent := b.putCall("parent")
	cb, _ := cbkAdd(b, parent.Ref, "cb")
	got := dspClaim(b, Queue, o, 3, 0)
	pf := got[0].Fence()
	b.start(pf)
	b.commit(pf, `1`)

	first, err := b.s.Adopt(b.ctx, pf, cb.ID, persistence.StatusNew)
	if err != nil {
		t.Fatalf("first Adopt: %v", err)
	}
	second, err := b.s.Adopt(b.ctx, pf, cb.ID, persistence.StatusNew)
	if err != nil {
		t.Fatalf("second Adopt of a callback still NEW: %v", err)
	}
	if second.Attempt <= first.Attempt {
		t.Fatalf("second Adopt: attempt %d, want more than the first's %d", second.Attempt, first.Attempt)
	}
	if _, err := b.s.Start(b.ctx, first.Fence()); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Start with the fence of the first adoption: got %v, want ErrReassigned", err)
	}
	b.start(second.Fence())
	if _, err := b.s.Adopt(b.ctx, pf, cb.ID, persistence.StatusNew); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Adopt(NEW only) of an ACTIVE callback: got %v, want ErrBadStatus", err)
	}
	// A stale parent fence cannot adopt.
	stale := pf
	stale.Attempt--
	if _, err := b.s.Adopt(b.ctx, stale, cb.ID, persistence.StatusActive); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Adopt by a stale parent fence: got %v, want ErrReassigned", err)
	}
	b.commit(second.Fence(), `2`)
	b.complete(second.Fence(), 0)
	b.complete(pf, 1)
}

// cbkSameJSON reports whether a and b are the same JSON value.
func cbkSameJSON(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// Scenario 54: live annotations, visible while the job runs, apart from its fenced state.
func cbkAnnotations(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.putCall("annotated")
	if v, ok, err := b.s.Annotation(b.ctx, j.Ref, "hello"); err != nil || ok {
		t.Fatalf("Annotation before any is set: %s ok %v err %v, want not set", v, ok, err)
	}
	if m, err := b.s.Annotations(b.ctx, j.Ref); err != nil || len(m) != 0 {
		t.Fatalf("Annotations before any is set: %v err %v, want none", m, err)
	}
	got := dspClaim(b, Queue, o, 3, 0)
	f := got[0].Fence()
	started := b.start(f)

	// The worker writes one while the job is ACTIVE; the client writes another.
	if err := b.s.SetAnnotation(b.ctx, j.Ref, "hello", json.RawMessage(`"world"`)); err != nil {
		t.Fatalf("SetAnnotation(hello) while active: %v", err)
	}
	if err := b.s.SetAnnotation(b.ctx, j.Ref, "reply", json.RawMessage(`{"n": 42}`)); err != nil {
		t.Fatalf("SetAnnotation(reply) while active: %v", err)
	}
	v, ok, err := b.s.Annotation(b.ctx, j.Ref, "hello")
	if err != nil || !ok || !cbkSameJSON(v, json.RawMessage(`"world"`)) {
		t.Fatalf("Annotation(hello) while active: %s ok %v err %v, want \"world\"", v, ok, err)
	}
	if _, ok, err := b.s.Annotation(b.ctx, j.Ref, "missing"); err != nil || ok {
		t.Fatalf("Annotation(missing): ok %v err %v, want not set", ok, err)
	}
	m, err := b.s.Annotations(b.ctx, j.Ref)
	if err != nil {
		t.Fatalf("Annotations: %v", err)
	}
	if len(m) != 2 || !cbkSameJSON(m["hello"], json.RawMessage(`"world"`)) || !cbkSameJSON(m["reply"], json.RawMessage(`{"n":42}`)) {
		t.Fatalf("Annotations: %v, want hello=\"world\" and reply={\"n\":42}", m)
	}
	// Overwriting replaces the value.
	if err := b.s.SetAnnotation(b.ctx, j.Ref, "hello", json.RawMessage(`2`)); err != nil {
		t.Fatalf("SetAnnotation(hello) again: %v", err)
	}
	if v, ok, err := b.s.Annotation(b.ctx, j.Ref, "hello"); err != nil || !ok || !cbkSameJSON(v, json.RawMessage(`2`)) {
		t.Fatalf("Annotation(hello) after overwrite: %s ok %v err %v, want 2", v, ok, err)
	}

	// The job's fenced state did not move: its run goes on.
	now := b.get(j.Ref)
	if now.Status != persistence.StatusActive || now.Attempt != started.Attempt || now.Owner != started.Owner {
		t.Fatalf("job after annotations: %s attempt %d owner %s, want active attempt %d owner %s",
			now.Status, now.Attempt, now.Owner, started.Attempt, started.Owner)
	}
	b.commit(f, `1`)
	b.complete(f, 0)
	if v, ok, err := b.s.Annotation(b.ctx, j.Ref, "reply"); err != nil || !ok || !cbkSameJSON(v, json.RawMessage(`{"n":42}`)) {
		t.Fatalf("Annotation(reply) after completion: %s ok %v err %v, want {\"n\":42}", v, ok, err)
	}
}

// A run's annotations are fenced: written while the run holds its job, refused once another
// attempt has it or the job is done, and nothing is written by a refused one.
func cbkRunAnnotationsFenced(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.putCall("annotated")
	got := dspClaim(b, Queue, o, 3, 0)
	f := got[0].Fence()
	if err := b.s.SetRunAnnotation(b.ctx, f, "progress", json.RawMessage(`0.5`)); err != nil {
		t.Fatalf("SetRunAnnotation while assigned: %v", err)
	}
	r := b.start(f)
	f = r.Fence()
	if err := b.s.SetRunAnnotation(b.ctx, f, "progress", json.RawMessage(`0.75`)); err != nil {
		t.Fatalf("SetRunAnnotation while active: %v", err)
	}
	stale := f
	stale.Attempt++
	if err := b.s.SetRunAnnotation(b.ctx, stale, "progress", json.RawMessage(`1`)); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("SetRunAnnotation by another attempt: %v, want ErrReassigned", err)
	}
	other := f
	other.Owner.Agent += "x"
	if err := b.s.SetRunAnnotation(b.ctx, other, "progress", json.RawMessage(`1`)); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("SetRunAnnotation by another owner: %v, want ErrReassigned", err)
	}
	for _, bad := range []struct {
		name  string
		value string
	}{{"", `1`}, {"progress", `{`}} {
		if err := b.s.SetRunAnnotation(b.ctx, f, bad.name, json.RawMessage(bad.value)); !errors.Is(err, persistence.ErrInvalid) {
			t.Fatalf("SetRunAnnotation(%q, %s): %v, want ErrInvalid", bad.name, bad.value, err)
		}
	}
	missing := f
	missing.ID = "no-such-job"
	if err := b.s.SetRunAnnotation(b.ctx, missing, "progress", json.RawMessage(`1`)); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("SetRunAnnotation of a missing job: %v, want ErrNotFound", err)
	}
	b.commit(f, `1`)
	b.complete(f, 0)
	err := b.s.SetRunAnnotation(b.ctx, f, "progress", json.RawMessage(`1`))
	var bad *persistence.BadStatusError
	if !errors.As(err, &bad) {
		t.Fatalf("SetRunAnnotation after completion: %v, want a BadStatusError", err)
	}
	if v, ok, err := b.s.Annotation(b.ctx, j.Ref, "progress"); err != nil || !ok || !cbkSameJSON(v, json.RawMessage(`0.75`)) {
		t.Fatalf("Annotation(progress): %s ok %v err %v, want the last one its run wrote, 0.75", v, ok, err)
	}
}

package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

func init() {
	register("Batch",
		testCase{"StartMany", testStartMany},
		testCase{"CommitMany", testCommitMany},
		testCase{"Rules", testBatchRules},
		testCase{"ClaimStarted", testClaimStarted},
	)
}

// claimN puts n jobs and claims them all for a fresh dispatcher's agent of size n.
func (b *bundle) claimN(n int) []*persistence.Job {
	b.t.Helper()
	for i := range n {
		b.putCall("job", i)
	}
	u := newUUID()
	c := DefaultConfig()
	c.Agents[0].Size = n
	b.activate(Queue, u, c)
	jobs := b.claim(persistence.Owner{Dispatcher: u, Agent: "main"}, n, nil)
	if len(jobs) != n {
		b.t.Fatalf("claimed %d jobs, want %d", len(jobs), n)
	}
	return jobs
}

func fences(jobs []*persistence.Job) []persistence.Fence {
	out := make([]persistence.Fence, len(jobs))
	for i, j := range jobs {
		out[i] = j.Fence()
	}
	return out
}

// Each run of a batch is checked on its own: a stale fence is refused, the others start.
func testStartMany(t *testing.T, h Harness) {
	b := setup(t, h)
	jobs := b.claimN(4)
	fs := fences(jobs)
	fs[2].Attempt++ // a run that lost its job
	started, errs, err := b.s.StartMany(b.ctx, fs)
	if err != nil {
		t.Fatalf("StartMany: %v", err)
	}
	for i := range fs {
		if i == 2 {
			if !errors.Is(errs[i], persistence.ErrReassigned) || started[i] != nil {
				t.Fatalf("stale run %d: %v, %v; want ErrReassigned and no job", i, started[i], errs[i])
			}
			if j := b.get(jobs[i].Ref); j.Status != persistence.StatusAssigned {
				t.Fatalf("stale run's job: %s, want still ASSIGNED", j.Status)
			}
			continue
		}
		if errs[i] != nil || started[i].Status != persistence.StatusActive || started[i].ActiveStart.IsZero() {
			t.Fatalf("run %d: %v, %v; want ACTIVE with its start stamped", i, started[i], errs[i])
		}
		if j := b.get(jobs[i].Ref); j.Status != persistence.StatusActive {
			t.Fatalf("run %d stored: %s, want ACTIVE", i, j.Status)
		}
	}
	// Starting the same runs again: each is refused for its status, nothing changes.
	_, errs, err = b.s.StartMany(b.ctx, []persistence.Fence{started[0].Fence(), started[1].Fence()})
	if err != nil || !errors.Is(errs[0], persistence.ErrBadStatus) || !errors.Is(errs[1], persistence.ErrBadStatus) {
		t.Fatalf("StartMany of ACTIVE runs: %v %v, want ErrBadStatus for each", errs, err)
	}
}

// A batch of outcomes: results and failures, straight to COMPLETED or to CALLBACKS; a run
// refused does not stop the others.
func testCommitMany(t *testing.T, h Harness) {
	b := setup(t, h)
	jobs := b.claimN(4)
	started, errs, err := b.s.StartMany(b.ctx, fences(jobs))
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("StartMany: %v %v", errs, err)
	}
	if _, _, err := b.s.AddCallback(b.ctx, started[1].Ref, persistence.JobSpec{Call: call("cb")}); err != nil {
		t.Fatalf("AddCallback: %v", err)
	}
	stale := started[3].Fence()
	stale.Owner.Agent = "other"
	commits := []persistence.Commit{
		{Fence: started[0].Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}},
		{Fence: started[1].Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`2`), Complete: true}},
		{Fence: started[2].Fence(), Outcome: persistence.Outcome{Failure: persistence.NewFailure(errors.New("boom"), "")}},
		{Fence: stale, Outcome: persistence.Outcome{Result: json.RawMessage(`4`)}},
	}
	done, errs, err := b.s.CommitMany(b.ctx, commits)
	if err != nil {
		t.Fatalf("CommitMany: %v", err)
	}
	want := []persistence.Status{persistence.StatusCompleted, persistence.StatusCallbacks, persistence.StatusCallbacks}
	for i, st := range want {
		if errs[i] != nil || done[i].Status != st {
			t.Fatalf("commit %d: %v, %v; want %s", i, done[i], errs[i], st)
		}
		if j := b.get(jobs[i].Ref); j.Status != st {
			t.Fatalf("commit %d stored: %s, want %s", i, j.Status, st)
		}
	}
	if string(done[0].Result) != "1" || !done[2].Failed() {
		t.Fatalf("outcomes: %s and failed=%v, want 1 and a failure", done[0].Result, done[2].Failed())
	}
	if !errors.Is(errs[3], persistence.ErrReassigned) {
		t.Fatalf("commit with a stale fence: %v, want ErrReassigned", errs[3])
	}
	if j := b.get(jobs[3].Ref); j.Status != persistence.StatusActive || j.Result != nil {
		t.Fatalf("stale commit's job: %s with %s, want ACTIVE without result", j.Status, j.Result)
	}
}

func testBatchRules(t *testing.T, h Harness) {
	b := setup(t, h)
	if jobs, errs, err := b.s.StartMany(b.ctx, nil); err != nil || jobs != nil || errs != nil {
		t.Fatalf("empty batch: %v %v %v, want nothing", jobs, errs, err)
	}
	a := b.putCall("a")
	other := b.put("other", persistence.JobSpec{Call: call("b")})
	_, _, err := b.s.StartMany(b.ctx, []persistence.Fence{a.Fence(), other.Fence()})
	if !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("a batch over two queues: %v, want ErrInvalid", err)
	}
	_, _, err = b.s.CommitMany(b.ctx, []persistence.Commit{{Fence: a.Fence()}})
	if !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("a commit without outcome: %v, want ErrInvalid", err)
	}
	if j := b.get(a.Ref); j.Status != persistence.StatusPending {
		t.Fatalf("after refused batches: %s, want PENDING", j.Status)
	}
}

// A claim with Start hands its jobs out ACTIVE, started in the claim's transaction, expired
// jobs' fail jobs included.
func testClaimStarted(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("work")
	expired := b.put(Queue, persistence.JobSpec{Call: call("late"), BeginAfter: Epoch.Add(-2 * time.Hour), BeginBy: time.Hour})
	o := b.dispatcher()
	jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 3, Start: true})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("Claim with Start: %v %v", ids(jobs), err)
	}
	for _, c := range jobs {
		if c.Status != persistence.StatusActive || c.ActiveStart.IsZero() {
			t.Fatalf("claimed %s (%s): %s, want ACTIVE with its start stamped", c.ID, c.Call.Handler, c.Status)
		}
		if got := b.get(c.Ref); got.Status != persistence.StatusActive {
			t.Fatalf("stored %s: %s, want ACTIVE", c.ID, got.Status)
		}
	}
	got := map[string]bool{}
	for _, c := range jobs {
		if c.Call.Handler == persistence.HandlerFail {
			got["fail "+c.Target] = true
		} else {
			got[c.ID] = true
		}
	}
	if !got[j.ID] || !got["fail "+expired.ID] {
		t.Fatalf("claimed %v, want the job and the fail job of the expired one", got)
	}
	// Its run goes on from there: a commit needs no Start.
	b.commit(jobs[0].Fence(), "1")
}

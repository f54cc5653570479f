package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// runWithin runs j and returns its result, failing the test when the run does not end within
// a minute: a run that retries for ever holds its agent's slot for ever.
func (f *execFixture) runWithin(j *persistence.Job) Result {
	f.t.Helper()
	done := make(chan Result, 1)
	go func() { done <- f.exec.run(f.ctx, j) }()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		f.dump()
		f.t.Fatalf("the run of %s did not end within a minute", j.ID)
		return Result{}
	}
}

// A run whose commit finds its job in a status it cannot commit (its outcome was stored
// already by an earlier try whose reply was lost, or its record changed under it after a slot
// migration) ends, logged, instead of retrying for ever; whatever the job's retry policy.
func TestExecCommitBadStatusEnds(t *testing.T) {
	for _, policy := range []string{persistence.RetryCommonFourTimesName, persistence.RetryCommonForeverName} {
		t.Run(policy, func(t *testing.T) {
			f := newExecFixture(t)
			var claimed *persistence.Job
			f.h["h"] = func(context.Context, *persistence.Call) (any, error) {
				// The outcome lands in the store under this run's fence, as a commit whose
				// reply was lost.
				if _, err := f.store.Commit(f.ctx, claimed.Fence(), persistence.Outcome{Result: []byte("1"), Complete: true}); err != nil {
					t.Errorf("Commit: %v", err)
				}
				return 2, nil
			}
			j := f.putSpec(persistence.JobSpec{Call: callTo("h"), RetryPolicy: policy})
			claimed = f.claim(j.ID)
			r := f.runWithin(claimed)
			if r.Ending != Failed || !errors.Is(r.Err, persistence.ErrBadStatus) {
				t.Fatalf("run: %v (%v), want failed on a bad status", r.Ending, r.Err)
			}
			if _, ok := f.logs.Find(slog.LevelError, "cannot commit"); !ok {
				t.Fatalf("no ERROR for the commit that cannot be made")
			}
			if got := f.get(j.Ref); got.Status != persistence.StatusCompleted || string(got.Result) != "1" {
				t.Fatalf("job %s %s, want COMPLETED with the first outcome", got.Status, got.Result)
			}
		})
	}
}

// A job whose handler returns an inner job that does not exist cannot wait for it: it fails,
// saying so, instead of staying ACTIVE and parked for ever.
func TestExecInnerJobMissing(t *testing.T) {
	f := newExecFixture(t)
	f.h["h"] = func(context.Context, *persistence.Call) (any, error) {
		return &Inner{Ref: persistence.Ref{Queue: "q", ID: "no-such-job"}}, nil
	}
	j := f.put("h")
	r := f.runWithin(f.claim(j.ID))
	got := f.get(j.Ref)
	if r.Ending != Finished || got.Status != persistence.StatusCompleted || !got.Failed() ||
		!errors.Is(got.Failure, persistence.ErrNotFound) || got.Parked || got.WaitingOn != "" {
		t.Fatalf("run %v; job %s parked %v waiting on %q with failure %v, want COMPLETED with a NotFoundError", r.Ending,
			got.Status, got.Parked, got.WaitingOn, got.Failure)
	}
}

// corruptTarget is a store in which one job's record cannot be read by adoption, as a record
// no process can decode.
type corruptTarget struct {
	persistence.Store
	id string
}

func (s corruptTarget) Adopt(ctx context.Context, by persistence.Fence, target string, statuses ...persistence.Status) (*persistence.Job, error) {
	if target == s.id {
		return nil, fmt.Errorf("adopt: %w: job %s: cannot decode its call", persistence.ErrCorrupt, target)
	}
	return s.Store.Adopt(ctx, by, target, statuses...)
}

// A system job that cannot act on its target (a store error that no retry cures) ends FAILED
// with that error, once, and frees its slot: it is not left held, to be recovered and run
// again for ever.
func TestNodeFailsASystemJobItCannotRun(t *testing.T) {
	f := newExecFixture(t)
	j := f.put("work")
	claimed := f.claim(j.ID)
	if claimed.Status != persistence.StatusActive {
		if _, err := f.store.Start(f.ctx, claimed.Fence()); err != nil {
			t.Fatal(err)
		}
	}
	report, err := f.store.Deactivate(f.ctx, "q", "d1") // a handleInterrupt job for it
	if err != nil || len(report.SystemJobs) != 1 {
		t.Fatalf("Deactivate: %+v %v, want one system job", report, err)
	}
	sysID := report.SystemJobs[0]
	sub := f.completions()
	o := f.nodeOptions("n1", 1, 20*time.Millisecond)
	o.Store = corruptTarget{Store: f.store, id: j.ID}
	n := f.startNode(o)
	defer f.stopNode(n)
	sys := f.waitDone(sub, sysID)[sysID]
	if !sys.Failed() || !errors.Is(sys.Failure, persistence.ErrCorrupt) || sys.Retry[persistence.CountInterruptions] != 0 {
		t.Fatalf("system job: failure %v, counters %v; want a CorruptRecordError at its first run", sys.Failure, sys.Retry)
	}
	f.eventually("the agent holds nothing", func() bool {
		held, err := f.store.AgentJobs(f.ctx, "q", persistence.Owner{Dispatcher: "n1", Agent: "main"})
		return err == nil && len(held) == 0
	})
}

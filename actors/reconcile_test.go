package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// recoveredLog is what a dispatcher logs when it recovers jobs its agent held without running
// them.
const recoveredLog = "recovered jobs an agent held without running them"

// lossyClaims is a store whose claims run, but whose replies are lost while lose is positive:
// the claim is made in the store (the jobs are ACTIVE, held by the agent) and the caller gets
// an error instead of the jobs, as when Redis freezes or restarts before it answers.
type lossyClaims struct {
	persistence.Store
	lose atomic.Int32
	mu   sync.Mutex
	lost []string // the jobs whose claims' replies were lost
}

var errReplyLost = fmt.Errorf("claim: %w: read tcp 127.0.0.1:6379: i/o timeout", persistence.ErrUnavailable)

// loses reports whether the reply of a claim that took jobs is to be lost, and records them.
func (s *lossyClaims) loses(jobs []*persistence.Job) bool {
	if len(jobs) == 0 || s.lose.Add(-1) < 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		s.lost = append(s.lost, j.ID)
	}
	return true
}

func (s *lossyClaims) lostJobs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lost...)
}

func (s *lossyClaims) Claim(ctx context.Context, p persistence.ClaimParams) ([]*persistence.Job, error) {
	jobs, err := s.Store.Claim(ctx, p)
	if err == nil && s.loses(jobs) {
		return nil, errReplyLost
	}
	return jobs, err
}

// lossyBatch is lossyClaims for the committer's batches, which claim through Batch.
type lossyBatch struct{ *lossyClaims }

func (s lossyBatch) Batch(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (
	[]*persistence.Job, []error, [][]*persistence.Job, []error) {
	jobs, errs, claimed, claimErrs := s.Store.(batchStore).Batch(ctx, commits, claims)
	for k := range claimed {
		if claimErrs[k] == nil && s.loses(claimed[k]) {
			claimed[k], claimErrs[k] = nil, errReplyLost
		}
	}
	return jobs, errs, claimed, claimErrs
}

// A claim whose reply is lost leaves its job ACTIVE and held by the agent, with no run. The
// agent finds it at a poll and recovers it as an interrupted job: it runs once, completes, and
// counts one interruption; nothing stays held.
func TestNodeRecoversALostClaimReply(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			f := newExecFixture(t)
			var mu sync.Mutex
			runs := map[string]int{}
			f.h["work"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
				r, _ := RunningFrom(ctx)
				mu.Lock()
				runs[r.Job.ID]++
				mu.Unlock()
				return 7, nil
			}
			lossy := &lossyClaims{Store: f.store}
			lossy.lose.Store(1)
			o := f.nodeOptions("n1", 2, 50*time.Millisecond)
			o.Store = lossy
			if batched {
				o.Store = lossyBatch{lossy}
			}
			sub := f.completions()
			j := f.put("work")
			n := f.startNode(o)
			defer f.stopNode(n)
			done := f.waitDone(sub, j.ID)[j.ID]
			if lost := lossy.lostJobs(); len(lost) != 1 || lost[0] != j.ID {
				t.Fatalf("lost claim replies for %v, want for %s only", lost, j.ID)
			}
			if string(done.Result) != "7" || done.Retry[persistence.CountInterruptions] != 1 {
				t.Fatalf("job %s with counters %v, want 7 after one interruption", done.Result, done.Retry)
			}
			mu.Lock()
			if runs[j.ID] != 1 {
				t.Errorf("the job ran %d times, want once", runs[j.ID])
			}
			mu.Unlock()
			if _, ok := f.logs.Find(slog.LevelWarn, recoveredLog); !ok {
				t.Errorf("no %q warning", recoveredLog)
			}
			f.eventually("the agent holds nothing", func() bool {
				held, err := f.store.AgentJobs(f.ctx, "q", persistence.Owner{Dispatcher: "n1", Agent: "main"})
				return err == nil && len(held) == 0
			})
		})
	}
}

// Jobs claimed while the dispatcher polls every millisecond are listed by the store before
// their runs are recorded, many times over: none is taken for an orphan, and each runs once,
// uninterrupted.
func TestNodeClaimsOnTheirWayAreNotOrphans(t *testing.T) {
	f := newExecFixture(t)
	var mu sync.Mutex
	runs := map[string]int{}
	f.h["count"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		mu.Lock()
		runs[r.Job.ID]++
		mu.Unlock()
		return nil, nil
	}
	sub := f.completions()
	n := f.startNode(f.nodeOptions("n1", 4, time.Millisecond))
	defer f.stopNode(n)
	var ids []string
	for range 300 {
		ids = append(ids, f.put("count").ID)
	}
	done := f.waitDone(sub, ids...)
	for _, id := range ids {
		if c := done[id].Retry[persistence.CountInterruptions]; c != 0 {
			t.Fatalf("job %s was interrupted %d times, want never", id, c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Fatalf("job %s ran %d times, want once", id, runs[id])
		}
	}
	if r, ok := f.logs.Find(slog.LevelWarn, recoveredLog); ok {
		t.Fatalf("jobs recovered as orphans: %v", r)
	}
}

// A composite waiting for its sub-job is parked in its agent with no run: polls leave it
// alone, and it completes uninterrupted.
func TestNodeParkedCompositeIsNotAnOrphan(t *testing.T) {
	f := newExecFixture(t)
	started, release := make(chan struct{}), make(chan struct{})
	f.h["slow"] = func(context.Context, *persistence.Call) (any, error) {
		close(started)
		<-release
		return 1, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("slow")}, persistence.Call{Handler: HandlerCollect})
	n := f.startNode(f.nodeOptions("n1", 2, time.Millisecond))
	defer f.stopNode(n)
	<-started
	// Polls that saw the composite parked, with no run, while its sub-job runs.
	f.waitPolls(n, 10)
	close(release)
	f.neverRecovered(f.waitDone(sub, comp.ID)[comp.ID])
}

// A composite finished by its postprocess's step is adopted by that step's run, and stays
// held by its agent, no longer parked, while its own callbacks run. That run is the
// composite's: polls meanwhile must not take it for a job with no run and recover it (which
// ran its callbacks a second time).
func TestNodeAdoptedCompositeIsNotAnOrphan(t *testing.T) {
	f := newExecFixture(t)
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	f.h["mail"] = func(context.Context, *persistence.Call) (any, error) {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		return nil, nil
	}
	sub := f.completions()
	comp := f.putComposite(HandlerSerial, []persistence.Call{callTo("n", 1)}, persistence.Call{Handler: HandlerCollect})
	if _, _, err := f.store.AddCallback(f.ctx, comp.Ref, persistence.JobSpec{Call: callTo("mail")}); err != nil {
		t.Fatal(err)
	}
	f.h["n"] = func(_ context.Context, c *persistence.Call) (any, error) { return json.RawMessage(c.Args[0]), nil }
	n := f.startNode(f.nodeOptions("n1", 2, time.Millisecond))
	defer f.stopNode(n)
	<-started
	// Polls that saw the composite held by the agent, in CALLBACKS, with no run of its own.
	f.waitPolls(n, 10)
	close(release)
	f.neverRecovered(f.waitDone(sub, comp.ID)[comp.ID])
	if c := calls.Load(); c != 1 {
		t.Fatalf("the composite's callback ran %d times, want once", c)
	}
}

// waitPolls waits until node n has polled count more times than it had when called.
func (f *execFixture) waitPolls(n *Node, count int64) {
	f.t.Helper()
	first := n.Polls(time.Time{}, time.Time{}, 1)
	f.eventually(fmt.Sprintf("%d more polls", count), func() bool {
		p := n.Polls(time.Time{}, time.Time{}, 1)
		return len(first) == 1 && len(p) == 1 && p[0].ID >= first[0].ID+count
	})
}

// neverRecovered fails the test unless composite done succeeded uninterrupted and no job was
// recovered as an orphan.
func (f *execFixture) neverRecovered(done *persistence.Job) {
	f.t.Helper()
	if c := done.Retry[persistence.CountInterruptions]; c != 0 || done.Failed() {
		f.t.Fatalf("composite %s (failure %v) interrupted %d times, want a success never interrupted", done.Result, done.Failure, c)
	}
	if r, ok := f.logs.Find(slog.LevelWarn, recoveredLog); ok {
		f.t.Fatalf("jobs recovered as orphans: %v", r)
	}
}

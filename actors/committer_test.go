package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// batchCall is one call a fake store saw.
type batchCall struct {
	commits []persistence.Commit
	claims  []persistence.ClaimParams
}

// fakeStore answers the committer's calls: each commit succeeds, each claim hands out as many
// new jobs as its Max allows (or max, when set). Calls are recorded; only the methods the
// committer uses are implemented.
type fakeStore struct {
	persistence.Store // nil: any other method panics

	mu    sync.Mutex
	calls []batchCall
	max   int // when positive, a claim hands out at most this many jobs
	dry   int // how many of the next claims hand out nothing (the queue was empty)
	next  int
	seen  chan batchCall
}

func newFakeStore() *fakeStore { return &fakeStore{seen: make(chan batchCall, 100)} }

func (s *fakeStore) record(commits []persistence.Commit, claims []persistence.ClaimParams) ([]*persistence.Job, []error, [][]*persistence.Job, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	call := batchCall{commits, claims}
	s.calls = append(s.calls, call)
	s.seen <- call
	jobs, errs := make([]*persistence.Job, len(commits)), make([]error, len(commits))
	for i, c := range commits {
		jobs[i] = &persistence.Job{Ref: c.Fence.Ref, Status: persistence.StatusCompleted, Owner: c.Fence.Owner, Attempt: c.Fence.Attempt}
	}
	got, claimErrs := make([][]*persistence.Job, len(claims)), make([]error, len(claims))
	for k, p := range claims {
		n := p.Max
		if s.max > 0 {
			n = min(n, s.max)
		}
		if s.dry > 0 {
			s.dry, n = s.dry-1, 0
		}
		for range n {
			s.next++
			got[k] = append(got[k], &persistence.Job{Ref: persistence.Ref{Queue: p.Queue, ID: fmt.Sprintf("j%d", s.next)},
				Status: persistence.StatusActive, Owner: persistence.Owner{Dispatcher: p.Dispatcher, Agent: p.Agent}, Attempt: 1})
		}
	}
	return jobs, errs, got, claimErrs
}

func (s *fakeStore) Batch(_ context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) ([]*persistence.Job, []error, [][]*persistence.Job, []error) {
	return s.record(commits, claims)
}

// plainStore is the fake store without Batch: the committer calls Commit, CommitMany and Claim.
type plainStore struct {
	persistence.Store // nil: any other method panics
	f                 *fakeStore
}

func (s plainStore) Commit(_ context.Context, f persistence.Fence, o persistence.Outcome) (*persistence.Job, error) {
	jobs, errs, _, _ := s.f.record([]persistence.Commit{{Fence: f, Outcome: o}}, nil)
	return jobs[0], errs[0]
}

func (s plainStore) CommitMany(_ context.Context, commits []persistence.Commit) ([]*persistence.Job, []error, error) {
	jobs, errs, _, _ := s.f.record(commits, nil)
	return jobs, errs, nil
}

func (s plainStore) Claim(_ context.Context, p persistence.ClaimParams) ([]*persistence.Job, error) {
	_, _, got, errs := s.f.record(nil, []persistence.ClaimParams{p})
	return got[0], errs[0]
}

// committerFixture is a committer over a fake store, with one joined agent (an actor of the
// test) whose claims arrive on claims.
type committerFixture struct {
	t      *testing.T
	c      *committer
	root   *actor.RootContext
	agent  *actor.PID
	claims chan *messages.Claimed
	seen   chan batchCall
}

// startTestCommitter starts a committer in an actor system of its own, stopped with the test.
func startTestCommitter(t *testing.T, base context.Context, s persistence.Store, op func() (context.Context, context.CancelFunc), linger time.Duration) *committer {
	t.Helper()
	root, err := StartRoot(nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Stop() })
	c, err := startCommitter(root, "committer/test", base, s, op, linger, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCommitterFixture starts a committer that lingers at most linger for a cohort: a long
// linger makes a test that commits whole cohorts independent of the machine's speed; a test
// whose runs do not all commit takes a short one.
func newCommitterFixture(t *testing.T, s persistence.Store, seen chan batchCall, size int, linger time.Duration) *committerFixture {
	t.Helper()
	base, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	op := func() (context.Context, context.CancelFunc) { return context.WithTimeout(base, time.Minute) }
	c := startTestCommitter(t, base, s, op, linger)
	f := &committerFixture{t: t, c: c, root: c.root, claims: make(chan *messages.Claimed, 10), seen: seen}
	f.agent = f.root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.Claimed); ok {
			f.claims <- m
		}
	}))
	f.root.Send(c.PID(), &messages.JoinClaims{Agent: f.agent,
		Claim: persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: size, Start: true}})
	return f
}

// ask asks for a claim, as the agent does.
func (f *committerFixture) ask() {
	f.root.Send(f.c.PID(), &messages.AskClaims{Agent: f.agent, Want: true})
}

// ended tells the committer that the runs of jobs ended, as the agent does.
func (f *committerFixture) ended(jobs ...*persistence.Job) {
	m := &messages.AskClaims{Agent: f.agent}
	for _, j := range jobs {
		m.Ended = append(m.Ended, runKey{ID: j.ID, Attempt: j.Attempt})
	}
	f.root.Send(f.c.PID(), m)
}

func (f *committerFixture) nextCall() batchCall {
	f.t.Helper()
	return receive(f.t, f.seen, "no call reached the store")
}

func (f *committerFixture) nextClaim() *messages.Claimed {
	f.t.Helper()
	return receive(f.t, f.claims, "no claim was handed over")
}

// receive returns the next value of ch, failing the test with missing if none comes within a
// minute.
func receive[T any](t *testing.T, ch <-chan T, missing string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatal(missing)
		var zero T
		return zero
	}
}

// claimHalves asks for a claim, as the lone agent of the fixture, of size slots: it goes in
// two batches on their way at once, each claiming for half the slots (see commitState.take).
// It returns the jobs of each claim, in the order they are handed over.
func (f *committerFixture) claimHalves(size int) (a, b []*persistence.Job) {
	f.t.Helper()
	f.ask()
	first, second := f.nextCall(), f.nextCall()
	if len(first.commits)+len(second.commits) != 0 || len(first.claims) != 1 || len(second.claims) != 1 {
		f.t.Fatalf("calls %+v and %+v; want a claim each, no commits", first, second)
	}
	halves := []int{first.claims[0].Max, second.claims[0].Max}
	slices.Sort(halves)
	if want := []int{size / 2, (size + 1) / 2}; !slices.Equal(halves, want) {
		f.t.Fatalf("the two claims are of %v slots, want %v", halves, want)
	}
	return f.nextClaim().Jobs, f.nextClaim().Jobs
}

// commitAll commits the runs of jobs concurrently, as their runs do, and waits for them.
func (f *committerFixture) commitAll(jobs []*persistence.Job) {
	f.t.Helper()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			if _, err := f.c.commit(j, persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
				f.t.Errorf("commit %s: %v", j.ID, err)
			}
		})
	}
	wg.Wait()
}

// The commits of a cohort of short jobs go to the store together, with the claim that
// replaces them: one call per cohort. A lone agent's slots go round in two cohorts.
func TestCommitterBatchesACohort(t *testing.T) {
	s := newFakeStore()
	f := newCommitterFixture(t, s, s.seen, 4, time.Hour)
	a, b := f.claimHalves(4)
	for round := range 3 {
		for _, cohort := range []*[]*persistence.Job{&a, &b} {
			f.commitAll(*cohort)
			call := f.nextCall()
			if len(call.commits) != 2 || len(call.claims) != 1 || call.claims[0].Max != 2 {
				t.Fatalf("round %d: %d commits, claims %+v; want the cohort's 2 commits and a claim of 2 in one call", round, len(call.commits), call.claims)
			}
			f.ended(*cohort...)
			*cohort = f.nextClaim().Jobs
		}
	}
}

// steppedStore is the fake store whose Batch calls each wait until the test releases that
// call, by its number: the test decides which batch lands when.
type steppedStore struct {
	*fakeStore
	mu    sync.Mutex
	gates []chan struct{}
	calls chan int // the number of each call, as it is recorded
}

func newSteppedStore() *steppedStore {
	return &steppedStore{fakeStore: newFakeStore(), calls: make(chan int, 100)}
}

func (s *steppedStore) gate(i int) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.gates) <= i {
		s.gates = append(s.gates, make(chan struct{}))
	}
	return s.gates[i]
}

func (s *steppedStore) Batch(_ context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) ([]*persistence.Job, []error, [][]*persistence.Job, []error) {
	jobs, errs, got, claimErrs := s.record(commits, claims)
	s.fakeStore.mu.Lock()
	i := len(s.fakeStore.calls) - 1
	s.fakeStore.mu.Unlock()
	s.calls <- i
	<-s.gate(i)
	return jobs, errs, got, claimErrs
}

// release lets call i land.
func (s *steppedStore) release(i int) { close(s.gate(i)) }

// A lone agent's two cohorts overlap: each one's commits claim its slots again while the
// other's batch is on its way. The slots a batch commits are its claim's from then on, not
// also its runs': counted twice, the second cohort's batch would find none free and claim
// nothing until the first one's was back.
func TestCommitterLoneAgentCohortsOverlap(t *testing.T) {
	s := newSteppedStore()
	f := newCommitterFixture(t, s, s.seen, 4, time.Hour)
	f.ask()
	for range 2 {
		receive(t, s.calls, "no claim went")
		if call := f.nextCall(); len(call.claims) != 1 || call.claims[0].Max != 2 {
			t.Fatalf("call %+v, want a claim of 2", call)
		}
	}
	var commits sync.WaitGroup
	for i := range 2 {
		// Cohort i lands and commits while the other batch is on its way.
		s.release(i)
		cohort := f.nextClaim().Jobs
		commits.Go(func() { f.commitAll(cohort) })
		receive(t, s.calls, "the cohort's commits did not go")
		if call := f.nextCall(); len(call.commits) != 2 || len(call.claims) != 1 || call.claims[0].Max != 2 {
			t.Fatalf("cohort %d: call %+v while another batch is out, want its 2 commits and a claim of 2", i, call)
		}
	}
	s.release(2)
	s.release(3)
	commits.Wait()
	for range 2 {
		if got := len(f.nextClaim().Jobs); got != 2 {
			t.Fatalf("a claim handed over %d jobs, want 2", got)
		}
	}
}

// A run takes its slot until its handler returns, also when the store no longer counts it: a
// claim never takes more than the agent's size minus the runs whose handlers still run.
func TestCommitterCountsSlotsByHandler(t *testing.T) {
	s := newFakeStore()
	f := newCommitterFixture(t, s, s.seen, 3, time.Millisecond)
	a, b := f.claimHalves(3)
	jobs := append(a, b...)
	// One run returns and commits; the two others still run (one of them may have been taken
	// from the agent by a sibling: the store would not count it).
	f.commitAll(jobs[:1])
	if call := f.nextCall(); len(call.claims) != 1 || call.claims[0].Max != 1 {
		t.Fatalf("claims %+v with two handlers running, want at most 1", call.claims)
	}
	f.nextClaim()
	f.ended(jobs[0])
	// A run that ends without committing (its job was taken away) frees its slot when the
	// agent says it ended.
	f.ended(jobs[1])
	f.ask()
	if call := f.nextCall(); len(call.claims) != 1 || call.claims[0].Max != 1 {
		t.Fatalf("claims %+v after a run ended, want 1", call.claims)
	}
}

// Reserved slots: a claim on its way holds the slots it may fill; what it does not fill is
// free again when it comes back.
func TestCommitterReleasesUnfilledReservations(t *testing.T) {
	s := newFakeStore()
	s.max = 1 // the queue has one job at a time
	f := newCommitterFixture(t, s, s.seen, 4, time.Millisecond)
	if a, b := f.claimHalves(4); len(a) != 1 || len(b) != 1 {
		t.Fatalf("the claims of 2 handed over %d and %d jobs, want one each", len(a), len(b))
	}
	// Two runs go; the two slots the claims did not fill are free again.
	f.ask()
	if call := f.nextCall(); call.claims[0].Max != 2 {
		t.Fatalf("claim of %d with two runs going, want 2", call.claims[0].Max)
	}
	f.nextClaim()
}

// A store that cannot batch gets one call per queue's commits and one per claim.
func TestCommitterWithoutBatch(t *testing.T) {
	s := newFakeStore()
	f := newCommitterFixture(t, plainStore{f: s}, s.seen, 4, time.Hour)
	jobs, _ := f.claimHalves(4)
	f.commitAll(jobs)
	commits := f.nextCall()
	claims := f.nextCall()
	if len(commits.commits) != 2 || len(commits.claims) != 0 || len(claims.claims) != 1 || claims.claims[0].Max != 2 {
		t.Fatalf("calls %+v then %+v; want CommitMany of 2, then a claim of 2", commits, claims)
	}
}

// Once its node stops, a committer refuses commits.
func TestCommitterStops(t *testing.T) {
	s := newFakeStore()
	base, cancel := context.WithCancel(context.Background())
	c := startTestCommitter(t, base, s, func() (context.Context, context.CancelFunc) { return context.WithCancel(base) }, lingerMax)
	cancel()
	j := &persistence.Job{Ref: persistence.Ref{Queue: "q", ID: "x"}, Status: persistence.StatusActive, Owner: persistence.Owner{Dispatcher: "d1", Agent: "main"}, Attempt: 1}
	deadline := time.Now().Add(time.Minute)
	for {
		// Until the committer sees the cancellation, a commit may still be taken and made.
		_, err := c.commit(j, persistence.Outcome{Result: json.RawMessage(`1`)})
		if errors.Is(err, errStopping) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit after stop: %v, want errStopping", err)
		}
	}
}

// A commit queued while the committer lingers for the rest of its cohort is answered when the
// node stops, not left waiting.
func TestCommitterStopsWhileLingering(t *testing.T) {
	s := newFakeStore()
	queued := make(chan struct{}, 10)
	committerMiddleware = signalsAfter[*commitReq](queued)
	defer func() { committerMiddleware = nil }()
	f := newCommitterFixture(t, s, s.seen, 4, time.Hour)
	cohort, _ := f.claimHalves(4)
	errs := make(chan error, 1)
	go func() {
		_, err := f.c.commit(cohort[0], persistence.Outcome{Result: json.RawMessage(`1`), Complete: true})
		errs <- err
	}()
	receive(t, queued, "the commit was never queued")
	f.root.Send(f.c.PID(), &stopCommits{}) // as the flusher does when the node's context ends
	if err := receive(t, errs, "the queued commit was never answered"); !errors.Is(err, errStopping) {
		t.Fatalf("queued commit: %v, want errStopping", err)
	}
}

// Stopped, the committer answers the commits still waiting: none waits for ever.
func TestCommitterStoppedAnswersCommits(t *testing.T) {
	s := newFakeStore()
	f := newCommitterFixture(t, s, s.seen, 4, time.Hour)
	cohort, _ := f.claimHalves(4)
	errs := make(chan error, 1)
	go func() {
		_, err := f.c.commit(cohort[0], persistence.Outcome{Result: json.RawMessage(`1`), Complete: true})
		errs <- err
	}()
	if err := f.root.PoisonFuture(f.c.PID()).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, errs, "the commit was never answered"); !errors.Is(err, errStopping) {
		t.Fatalf("commit: %v, want errStopping", err)
	}
	if _, err := f.c.commit(cohort[1], persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); !errors.Is(err, errStopping) {
		t.Fatalf("commit after the stop: %v, want errStopping", err)
	}
}

// gatedStore is the fake store whose Batch calls each wait for a release after they are
// recorded: the test decides when a batch lands.
type gatedStore struct {
	*fakeStore
	release chan struct{}
}

func (s gatedStore) Batch(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) ([]*persistence.Job, []error, [][]*persistence.Job, []error) {
	jobs, errs, got, claimErrs := s.record(commits, claims)
	<-s.release
	return jobs, errs, got, claimErrs
}

// With two agents, a batch claims for one of them, and the other's claim goes in a second
// batch while the first is still on its way; the batch that commits an agent's runs claims
// for that agent.
func TestCommitterTwoBatchesOnTheirWay(t *testing.T) {
	s := gatedStore{fakeStore: newFakeStore(), release: make(chan struct{})}
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	op := func() (context.Context, context.CancelFunc) { return context.WithTimeout(base, time.Minute) }
	c := startTestCommitter(t, base, s, op, time.Hour)
	claims := map[string]chan *messages.Claimed{"x": make(chan *messages.Claimed, 10), "y": make(chan *messages.Claimed, 10)}
	pids := map[string]*actor.PID{}
	for name, ch := range claims {
		pids[name] = c.root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if m, ok := ctx.Message().(*messages.Claimed); ok {
				ch <- m
			}
		}))
		c.root.Send(c.PID(), &messages.JoinClaims{Agent: pids[name],
			Claim: persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: name, Size: 2, Start: true}})
	}
	for _, pid := range pids {
		c.root.Send(c.PID(), &messages.AskClaims{Agent: pid, Want: true})
	}
	first := receive(t, s.seen, "no first batch")
	second := receive(t, s.seen, "no second batch while the first is on its way")
	if len(first.claims) != 1 || len(second.claims) != 1 || first.claims[0].Agent == second.claims[0].Agent {
		t.Fatalf("batches %+v and %+v; want one claim each, for the two agents", first.claims, second.claims)
	}
	// One of them lands (which one is the fake store's): its agent's runs commit while the
	// other batch is still on its way.
	s.release <- struct{}{}
	var landed string
	var jobs []*persistence.Job
	select {
	case m := <-claims["x"]:
		landed, jobs = "x", m.Jobs
	case m := <-claims["y"]:
		landed, jobs = "y", m.Jobs
	case <-time.After(time.Minute):
		t.Fatal("no claim was handed over")
	}
	var commits sync.WaitGroup
	for _, j := range jobs {
		commits.Go(func() {
			if _, err := c.commit(j, persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
				t.Errorf("commit %s: %v", j.ID, err)
			}
		})
	}
	third := receive(t, s.seen, "the landed agent's commits did not go while the other batch was out")
	for len(third.commits) < len(jobs) {
		// A commit queued after the batch went: let the batch land, the next one carries it.
		s.release <- struct{}{}
		third = receive(t, s.seen, "the rest of the commits never went")
	}
	if len(third.claims) != 1 || third.claims[0].Agent != landed {
		t.Fatalf("the batch committing %s's runs claims %+v, want a claim for %s", landed, third.claims, landed)
	}
	close(s.release) // every batch lands from now on
	commits.Wait()
}

// An agent that asks while its claim is on its way, all its slots reserved by it, may want a
// job put after that claim went: it is claimed for again once the claim is back.
func TestCommitterAsksAgainAfterAClaimOnItsWay(t *testing.T) {
	s := gatedStore{fakeStore: newFakeStore(), release: make(chan struct{})}
	s.dry = 1 // the claim on its way finds nothing: the job came after it
	f := newCommitterFixture(t, s, s.seen, 2, time.Hour)
	// A second agent, idle, so that the agent is not alone: a lone agent would claim for
	// half its slots in each of two batches (see commitState.take).
	idle := f.root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	f.root.Send(f.c.PID(), &messages.JoinClaims{Agent: idle,
		Claim: persistence.ClaimParams{Queue: "q2", Dispatcher: "d1", Agent: "idle", Size: 1, Start: true}})
	f.ask()
	if call := f.nextCall(); len(call.claims) != 1 || call.claims[0].Max != 2 {
		t.Fatalf("first call: %+v, want a claim of 2", call)
	}
	f.ask() // a wake-up for a job put now
	s.release <- struct{}{}
	if m := f.nextClaim(); len(m.Jobs) != 0 {
		t.Fatalf("the claim on its way got %d jobs, want none", len(m.Jobs))
	}
	if call := f.nextCall(); len(call.claims) != 1 || call.claims[0].Max != 2 {
		t.Fatalf("second call: %+v, want a claim of 2 again", call)
	}
	close(s.release)
	if m := f.nextClaim(); len(m.Jobs) != 2 {
		t.Fatalf("the second claim got %d jobs, want 2", len(m.Jobs))
	}
}

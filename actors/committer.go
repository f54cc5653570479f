package actors

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// committerActor is a node's hot path to the store: "committer/<uuid>" below zasync's root. It
// batches the commits of the node's concurrent runs and the claims of its agents, of every
// queue the node serves. A run sends its commit and waits for the answer; an agent asks to
// claim and gets the jobs as a message. What waits when no batch is on its way goes to the
// store together, each commit still fenced on its own and the claims after the commits: with
// a store that can batch (the Redis store), one round trip for all of it. An agent whose runs
// are committed in a batch also claims in that batch for the slots they free, without asking:
// a busy agent's finished jobs are replaced in the round trip that commits them.
//
// Under low load a commit or a claim goes alone, at once; under load they pile up while
// batches are on their way and go together in the next. Two batches are on their way at
// once (see maxFlights): with several agents, each claims for its share of them; with one,
// each for half its slots, so that its jobs go round in two cohorts.
// One wait is deliberate: the batch after a claim waits a moment for the commits of the jobs
// it handed out (see lingerMax), so that a busy agent's short jobs go round in cohorts, one
// round trip per cohort.
//
// The store calls are made by the committer's flusher goroutines, one per batch on its way,
// never in Receive; a batch comes back as a message. The actor runs on the synchronized
// dispatcher, as the agents do: a run's commit is handled on the run's goroutine, a batch's
// outcome on its flusher's.
//
// Takes commitReq (a run's commit, with its reply channel), JoinClaims, AskClaims and
// LeaveClaims (from agents), and its own flight (a batch back from the store), lingerOver,
// claimedAlone (a filtered claim back) and stopCommits (the node's context ended); sends
// ClaimStarted, Claimed and ClaimsLeft to agents, and answers each commit on its channel.
type committerActor struct {
	s *commitState
}

// commitState is the committer's books. They outlive a restart of the actor: the runs
// waiting for their commits and the agents' slots must survive a panic.
type commitState struct {
	store     persistence.Store
	batch     batchStore // nil when the store cannot batch: one call after another
	op        func() (context.Context, context.CancelFunc)
	lingerMax time.Duration
	self      *actor.PID
	flushes   chan *flight  // to the flushers (capacity maxFlights: the batches on their way)
	gone      chan struct{} // closed once the actor has stopped: no answer comes any more, the flushers end
	stopped   atomic.Bool   // commits are refused

	queue []*commitReq // the commits waiting for a batch
	// The runs that batches claimed and that have not committed yet, by the landing (the
	// batch back from the store) each came in; the landings that have such runs, oldest
	// first. ready: a landing's runs have all committed since the last batch went.
	cohort   map[runKey]*landing
	landings []*landing
	ready    bool
	// lingering that a lingerOver is on its way.
	lingering bool
	timer     *time.Timer
	flying    int // batches on their way
	agents    []*claimer
	claims    uint64 // the claims started, of every agent: the last one's number
}

// landing is a batch back from the store whose claims handed out runs: how many of them have
// not committed yet, and when they were handed out.
type landing struct {
	left int
	at   time.Time
}

// runKey names a run: its job and its attempt.
type runKey = messages.RunKey

// maxCommitBatch bounds how many commits go to the store in one batch.
const maxCommitBatch = 64

// maxFlights is how many batches may be on their way at once (see flights). With two, the
// node runs one half of its jobs while Redis works on the other half's batch: eight queues
// served by agents of size 1 drained about 1.25x as fast as with one batch at a time, eight
// of size 8 about 1.13x; one agent of size 32 about 1.25x, of size 8 about 1.1x, once a
// claim's slots were no longer counted twice while its batch was out (see take), when the
// machine had cores to spare (the overlap costs CPU: see the README's drain notes). Three or
// four measured no better than two for several agents, and 0.7x for one: more round trips,
// each carrying fewer jobs.
const maxFlights = 2

// lingerMax bounds how long a batch waits for the runs the previous batch claimed.
const lingerMax = 250 * time.Microsecond

// batchStore is a store that commits and claims in one round trip: the Redis store.
type batchStore interface {
	Batch(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (
		jobs []*persistence.Job, errs []error, claimed [][]*persistence.Job, claimErrs []error)
}

// commitReq is a run's commit, with where to answer it.
type commitReq struct {
	c     persistence.Commit
	reply chan commitRes
}

type commitRes struct {
	job *persistence.Job
	err error
}

// flight is one batch: sent to a flusher, and back to the actor with what the store did.
type flight struct {
	reqs     []*commitReq
	commits  []persistence.Commit
	claims   []persistence.ClaimParams
	claimers []*claimer // whose claims, in the order of claims
	numbers  []uint64   // the claims' numbers (ClaimStarted), in the order of claims
	ending   []*claimer // the agents whose runs reqs commits

	jobs      []*persistence.Job
	errs      []error
	got       [][]*persistence.Job
	claimErrs []error
}

// lingerOver is the end of the committer's wait for a cohort; stopCommits tells it the
// node's context ended.
type (
	lingerOver  struct{}
	stopCommits struct{}
)

// claimedAlone is a filtered claim back from its goroutine.
type claimedAlone struct {
	a        *claimer
	reserved int
	res      *messages.Claimed
}

// errStopping is returned for a commit asked of a committer whose node is stopping.
var errStopping = errors.New("zasync: node stopping")

// claimer is one agent's books in the committer. It counts the agent's slots as the agent
// does (a run takes a slot until its handler returns, even when the store no longer counts
// it, its job taken by a sibling), except that it learns first when a handler has returned:
// from the run's commit, in the very batch that can claim its slot again. A claim on its way
// reserves the slots it may fill, so that claims in two batches never take more than the
// agent's size.
type claimer struct {
	pid    *actor.PID
	params persistence.ClaimParams // the agent's claim, Max aside
	queued int                     // slots reserved by claims on their way
	trips  int                     // claims on their way
	runs   map[runKey]struct{}     // the agent's runs whose handlers have not returned
	want   bool                    // the agent asked to claim
	closed bool                    // the agent claims no more: it drains, or it stopped
}

// free is how many jobs the agent may claim now.
func (a *claimer) free() int { return a.params.Size - a.queued - len(a.runs) }

// owns reports whether run fence f is one of the agent's.
func (a *claimer) owns(f persistence.Fence) bool {
	return f.Owner.Dispatcher == a.params.Dispatcher && f.Owner.Agent == a.params.Agent && f.Queue == a.params.Queue
}

// ending counts the agent's runs that reqs commit and that still take a slot: their handlers
// have returned.
func (a *claimer) ending(reqs []*commitReq) int {
	n := 0
	for _, r := range reqs {
		if a.owns(r.c.Fence) {
			if _, ok := a.runs[runKey{ID: r.c.Fence.ID, Attempt: r.c.Fence.Attempt}]; ok {
				n++
			}
		}
	}
	return n
}

// returned forgets the agent's runs that reqs committed: their handlers have returned, their
// slots are free. (The agent tells of their ends later, or never: see agentActor.claim.)
func (a *claimer) returned(reqs []*commitReq) {
	for _, r := range reqs {
		if a.owns(r.c.Fence) {
			delete(a.runs, runKey{ID: r.c.Fence.ID, Attempt: r.c.Fence.Attempt})
		}
	}
}

// committer is how runs reach their node's committer actor.
type committer struct {
	s    *commitState
	root *actor.RootContext
}

// startCommitter starts a node's committer actor below root, named name, lingering at most
// linger for a cohort. Its flushers end with base, or when the actor stops.
func startCommitter(root *Root, name string, base context.Context, s persistence.Store,
	op func() (context.Context, context.CancelFunc), linger time.Duration, events *slog.Logger) (*committer, error) {
	st := &commitState{store: s, op: op, lingerMax: linger, flushes: make(chan *flight, maxFlights),
		gone: make(chan struct{}), cohort: map[runKey]*landing{}}
	st.batch, _ = s.(batchStore)
	opts := []actor.PropsOption{
		actor.WithDispatcher(actor.NewSynchronizedDispatcher(agentThroughput)),
		actor.WithSupervisor(supervision(events, "committer")),
	}
	if committerMiddleware != nil {
		opts = append(opts, actor.WithReceiverMiddleware(committerMiddleware))
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &committerActor{s: st} }, opts...)
	pid, err := root.Spawn(props, name)
	if err != nil {
		return nil, err
	}
	st.self = pid
	sys := root.System().Root
	st.timer = time.AfterFunc(time.Hour, func() { sys.Send(pid, lingerOverMsg) })
	st.timer.Stop()
	for range maxFlights {
		go st.flusher(base, sys)
	}
	return &committer{s: st, root: sys}, nil
}

// committerMiddleware, when set (by tests, before a committer starts), sees every message of
// the committer.
var committerMiddleware actor.ReceiverMiddleware

// lingerOverMsg is the one lingerOver sent.
var lingerOverMsg = &lingerOver{}

// PID is the committer actor's.
func (c *committer) PID() *actor.PID { return c.s.self }

// commit stores o for the run of j (the job as the run has it), in a batch with whatever else
// is waiting, and returns what Store.Commit would have.
func (c *committer) commit(j *persistence.Job, o persistence.Outcome) (*persistence.Job, error) {
	if c.s.stopped.Load() {
		return nil, errStopping
	}
	r := commitReqs.Get().(*commitReq)
	r.c = persistence.Commit{Fence: j.Fence(), Outcome: o, Known: j}
	c.root.Send(c.s.self, r)
	select {
	case res := <-r.reply: // the committer answers every request once: in a batch, or when it stops
		r.c = persistence.Commit{}
		commitReqs.Put(r)
		return res.job, res.err
	case <-c.s.gone:
		// Stopped: an answer already given is taken, else none comes (the request is not
		// reused: an answer may still land in it).
		select {
		case res := <-r.reply:
			return res.job, res.err
		default:
			return nil, errStopping
		}
	}
}

// commitReqs are requests with their reply channels, kept for the next commits: every job
// commits once at least.
var commitReqs = sync.Pool{New: func() any { return &commitReq{reply: make(chan commitRes, 1)} }}

func (a *committerActor) Receive(c actor.Context) {
	s := a.s
	switch m := c.Message().(type) {
	case *commitReq:
		if s.stopped.Load() {
			m.reply <- commitRes{err: errStopping}
			return
		}
		s.queue = append(s.queue, m)
		k := runKey{ID: m.c.Fence.ID, Attempt: m.c.Fence.Attempt}
		if l, ok := s.cohort[k]; ok {
			delete(s.cohort, k)
			if l.left--; l.left == 0 {
				s.landings = slices.DeleteFunc(s.landings, func(x *landing) bool { return x == l })
				s.ready = true
			}
		}
	case *messages.JoinClaims:
		s.join(m)
		return
	case *messages.AskClaims:
		if cl := s.claimer(m.Agent); cl != nil {
			for _, k := range m.Ended {
				delete(cl.runs, k) // its slot is free, if its commit did not free it
			}
			if m.Want {
				cl.want = !cl.closed
			}
		}
	case *messages.LeaveClaims:
		if cl := s.claimer(m.Agent); cl != nil {
			cl.closed, cl.want = true, false
			if m.Stopped {
				s.agents = slices.DeleteFunc(s.agents, func(x *claimer) bool { return x == cl })
			}
		}
		if !m.Stopped {
			c.Send(m.Agent, claimsLeft)
		}
		return
	case *flight:
		s.landed(c, m)
		s.flying--
	case *lingerOver:
		s.lingering = false
	case *claimedAlone:
		s.claimDone(c, m.a, m.reserved, m.res)
	case *stopCommits, *actor.Stopping:
		s.stop()
		return
	case *actor.Stopped:
		s.timer.Stop()
		close(s.gone)
		return
	default:
		return
	}
	s.next(c)
}

// claimsLeft answers every LeaveClaims.
var claimsLeft = &messages.ClaimsLeft{}

// join registers an agent, or replaces its former self.
func (s *commitState) join(m *messages.JoinClaims) {
	cl := &claimer{pid: m.Agent, params: m.Claim, runs: map[runKey]struct{}{}}
	for i, old := range s.agents {
		if old.pid.Equal(m.Agent) {
			old.closed = true
			s.agents[i] = cl
			return
		}
	}
	s.agents = append(s.agents, cl)
}

// claimer returns the books of the agent pid, nil if it has not joined.
func (s *commitState) claimer(pid *actor.PID) *claimer {
	for _, cl := range s.agents {
		if cl.pid.Equal(pid) {
			return cl
		}
	}
	return nil
}

// stop refuses the commits queued and those asked from now on.
func (s *commitState) stop() {
	if s.stopped.Swap(true) {
		return
	}
	for _, r := range s.queue {
		r.reply <- commitRes{err: errStopping}
	}
	clear(s.queue)
	s.queue = s.queue[:0]
}

// next sends the next batches, up to maxFlights on their way: the commits queued once an
// agent asks to claim or a commit comes; but while the runs a batch claimed may still commit
// soon (lingerMax at most after they were handed out), it waits for them (see lingers). Short jobs commit right after they start, and one batch for all of them is a
// round trip per cohort instead of one per job or two. A cohort whose handlers take longer is
// not waited for.
func (s *commitState) next(c actor.Context) {
	for s.flying < s.flights() && !s.stopped.Load() {
		if s.lingers() {
			return
		}
		s.ready = false
		f := s.take(c)
		if f == nil {
			return
		}
		s.flying++
		s.flushes <- f // never blocks: it holds maxFlights, and fewer are on their way
	}
}

// flights is how many batches may be on their way now: maxFlights when two agents or more
// claim through batches, or one of size 2 or more (its slots split between the batches,
// see take), else one.
func (s *commitState) flights() int {
	n := 0
	for _, a := range s.agents {
		if !a.closed && a.params.Filter == nil {
			if n++; n == 2 || a.params.Size >= 2 {
				return maxFlights
			}
		}
	}
	return 1
}

// lingers reports whether the next batch waits for runs handed out by the last batches: until
// all the runs of one batch's claims have committed, or lingerMax after the oldest of them
// were handed out. A landing waited for once is not waited for again.
func (s *commitState) lingers() bool {
	if len(s.landings) == 0 || s.ready || len(s.queue) >= maxCommitBatch {
		return false
	}
	oldest := s.landings[0]
	if wait := time.Until(oldest.at.Add(s.lingerMax)); wait > 0 {
		if !s.lingering {
			s.lingering = true
			s.timer.Reset(wait)
		}
		return true
	}
	s.landings = slices.Delete(s.landings, 0, 1)
	maps.DeleteFunc(s.cohort, func(_ runKey, l *landing) bool { return l == oldest })
	return false
}

// take makes the next batch from the commits queued, maxCommitBatch at most, and the claims
// of the agents that asked or whose runs it commits; nil when there is nothing to send.
func (s *commitState) take(c actor.Context) *flight {
	n := min(len(s.queue), maxCommitBatch)
	var f *flight
	if n > 0 {
		f = &flight{reqs: slices.Clone(s.queue[:n])}
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:]) // no references kept in the spare capacity
		s.queue = s.queue[:rest]
	}
	// A batch claims for its share of the agents at most (see maxFlights): first those whose
	// runs it commits, so that each share's commits and claims keep going together.
	type turn struct {
		a     *claimer
		ended int // its runs this batch commits whose handlers have returned
	}
	turns := make([]turn, len(s.agents))
	order := make([]turn, 0, len(s.agents)) // the agents whose runs this batch commits go first
	open := 0
	for i, a := range s.agents {
		turns[i] = turn{a: a}
		if f != nil {
			if turns[i].ended = a.ending(f.reqs); turns[i].ended > 0 {
				f.ending = append(f.ending, a)
				order = append(order, turns[i])
			}
		}
		if !a.closed && a.params.Filter == nil {
			open++
		}
	}
	for _, t := range turns {
		if t.ended == 0 {
			order = append(order, t)
		}
	}
	share, claimers := (open+maxFlights-1)/maxFlights, 0
	// A lone agent claims for half its slots a batch at most: its jobs go round in two
	// cohorts, one run while the other's batch is on its way, as several agents' do.
	lone := open == 1
	for _, t := range order {
		a, ended := t.a, t.ended
		if (!a.want && ended == 0) || a.closed {
			continue
		}
		p := a.params
		if p.Filter != nil {
			// A filtered claim reads and checks in Go, on a goroutine of its own (the batch
			// must not wait for it), one at a time: it does not follow this batch's commits.
			if a.trips == 0 {
				a.want = false
				p.Max = a.free()
				s.claimAlone(c, a, p)
			}
			continue
		}
		if a.trips > 0 && (!lone || a.trips >= maxFlights) {
			// An agent among several has one claim on its way at most (the batches share
			// the agents out); a lone agent one for each of its two cohorts. It claims
			// again once its claim is back.
			a.want = true
			continue
		}
		a.want = false
		// The runs this batch commits free their slots in the store before its claims do;
		// runs committed by another batch on its way count once their batch is back.
		p.Max = a.free() + ended
		if p.Max <= 0 {
			// A claim on its way holds the slots; the agent may have asked for a job put
			// after it went: it claims again once that claim is back.
			a.want = a.queued > 0
			continue
		}
		if claimers >= share {
			a.want = true // in the next batch
			continue
		}
		if half := (p.Size + maxFlights - 1) / maxFlights; lone && p.Max > half {
			p.Max = half
			a.want = true // the other half in the next batch
		}
		claimers++
		// The slots of the runs this batch commits are its claim's now (a.queued): counted
		// as runs as well, they were taken twice, and a batch formed while this one is out
		// found none free.
		if ended > 0 {
			a.returned(f.reqs)
		}
		if f == nil {
			f = &flight{}
		}
		f.claims, f.claimers = append(f.claims, p), append(f.claimers, a)
		f.numbers = append(f.numbers, s.start(c, a, p.Max))
	}
	if f != nil {
		f.commits = make([]persistence.Commit, len(f.reqs))
		for i, r := range f.reqs {
			f.commits[i] = r.c
		}
	}
	return f
}

// flusher is one of the committer's goroutines for store calls: it makes a batch's call and sends
// the batch back, until the actor stops. When the node's context ends it tells the actor, and
// still makes the call of a batch sent before the actor heard of it (it fails at once), so
// that its runs are answered.
func (s *commitState) flusher(base context.Context, root *actor.RootContext) {
	ended := base.Done()
	for {
		select {
		case f := <-s.flushes:
			ctx, cancel := s.op()
			f.jobs, f.errs, f.got, f.claimErrs = s.call(ctx, f.commits, f.claims)
			cancel()
			root.Send(s.self, f)
		case <-ended:
			ended = nil
			root.Send(s.self, &stopCommits{})
		case <-s.gone:
			return
		}
	}
}

// landed answers a batch back from the store: it hands the agents their jobs, then answers
// the runs.
func (s *commitState) landed(c actor.Context, f *flight) {
	// The committed runs' slots are free now: an agent that did not claim for them in this
	// batch claims in the next.
	for _, a := range f.ending {
		a.returned(f.reqs)
		if !a.closed && !slices.Contains(f.claimers, a) {
			a.want = true
		}
	}
	// The new jobs first: their runs start while the committed runs finish.
	l := &landing{}
	for k, a := range f.claimers {
		for _, j := range f.got[k] {
			s.cohort[runKey{ID: j.ID, Attempt: j.Attempt}] = l
			l.left++
		}
		s.claimDone(c, a, f.claims[k].Max, &messages.Claimed{Claim: f.numbers[k], Jobs: f.got[k], Err: f.claimErrs[k]})
	}
	if l.left > 0 {
		l.at = time.Now()
		s.landings = append(s.landings, l)
	}
	for i, r := range f.reqs {
		r.reply <- commitRes{f.jobs[i], f.errs[i]}
	}
}

// call commits and claims in one store call when the store can batch, one call after
// another when it cannot.
func (s *commitState) call(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (
	jobs []*persistence.Job, errs []error, got [][]*persistence.Job, claimErrs []error) {
	if s.batch != nil {
		return s.batch.Batch(ctx, commits, claims)
	}
	jobs, errs = make([]*persistence.Job, len(commits)), make([]error, len(commits))
	byQueue := map[string][]int{}
	var queues []string
	for i, cm := range commits {
		q := cm.Fence.Queue
		if _, ok := byQueue[q]; !ok {
			queues = append(queues, q)
		}
		byQueue[q] = append(byQueue[q], i)
	}
	for _, q := range queues { // a transaction stays in one queue (one cluster slot)
		at := byQueue[q]
		if len(at) == 1 {
			jobs[at[0]], errs[at[0]] = s.store.Commit(ctx, commits[at[0]].Fence, commits[at[0]].Outcome)
			continue
		}
		group := make([]persistence.Commit, len(at))
		for n, i := range at {
			group[n] = commits[i]
		}
		gj, ge, err := s.store.CommitMany(ctx, group)
		for n, i := range at {
			if err != nil {
				errs[i] = err
				continue
			}
			jobs[i], errs[i] = gj[n], ge[n]
		}
	}
	got, claimErrs = make([][]*persistence.Job, len(claims)), make([]error, len(claims))
	for k, p := range claims {
		got[k], claimErrs[k] = s.store.Claim(ctx, p)
	}
	return jobs, errs, got, claimErrs
}

// claimAlone claims p for an agent with a filter, on a goroutine of its own: it reads and
// checks candidates in several round trips, which no batch must wait for.
func (s *commitState) claimAlone(c actor.Context, a *claimer, p persistence.ClaimParams) {
	if p.Max <= 0 {
		return
	}
	n := s.start(c, a, p.Max)
	root := c.ActorSystem().Root
	go func() {
		ctx, cancel := s.op()
		jobs, err := s.store.Claim(ctx, p)
		cancel()
		root.Send(s.self, &claimedAlone{a: a, reserved: p.Max, res: &messages.Claimed{Claim: n, Jobs: jobs, Err: err}})
	}()
}

// start counts a claim of reserved slots for agent a as on its way, tells the agent, and
// returns the claim's number.
func (s *commitState) start(c actor.Context, a *claimer, reserved int) uint64 {
	a.queued += reserved
	a.trips++
	s.claims++
	c.Send(a.pid, &messages.ClaimStarted{Claim: s.claims})
	return s.claims
}

// claimDone releases what a claim of reserved slots did not fill, counts the jobs it gave as
// the agent's runs, and hands them over; a claim that lost its race to other claimers is
// asked again (and delivered as retried all the same: the agent waits for every claim it
// was told of by its number).
func (s *commitState) claimDone(c actor.Context, a *claimer, reserved int, r *messages.Claimed) {
	a.trips--
	a.queued -= reserved
	for _, j := range r.Jobs {
		a.runs[runKey{ID: j.ID, Attempt: j.Attempt}] = struct{}{}
	}
	if errors.Is(r.Err, persistence.ErrConflict) && !a.closed {
		a.want = true
		r.Retried = true
	}
	c.Send(a.pid, r)
}

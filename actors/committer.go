package actors

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// maxCommitBatch bounds how many commits go to the store in one batch.
const maxCommitBatch = 64

// committer is a node's hot path to the store: it batches the commits of concurrent runs and
// the claims of the node's agents. A run hands its outcome over and waits; an agent asks to
// claim and gets the jobs as a message. What waits when the committer is free goes to the
// store together, each commit still fenced on its own and the claims after the commits: with
// a store that can batch (the Redis store), one round trip for all of it. An agent whose runs
// are committed in a batch also claims in that batch for the slots they free, without asking:
// a busy agent's finished jobs are replaced in the round trip that commits them.
//
// Under low load a commit or a claim goes alone, at once; under load they pile up while one
// batch is in flight and go together in the next. One wait is deliberate: the batch after a
// claim waits a moment for the commits of the jobs it handed out (see linger), so that a busy
// agent's short jobs go round in cohorts, one round trip per cohort.
type committer struct {
	store persistence.Store
	batch batchStore // nil when the store cannot batch: one call after another
	base  context.Context
	op    func() (context.Context, context.CancelFunc)
	wake  chan struct{} // an agent asks to claim (capacity 1)

	// The commits waiting for a batch. A run queues its commit and wakes the committer only
	// when the committer waits for it: for any commit when idle, for the last of the cohort
	// when it lingers. Waking a goroutine per commit was a good part of a busy node's CPU.
	qmu       sync.Mutex
	queue     []*commitReq        // guarded by qmu
	cohort    map[runKey]struct{} // guarded by qmu: the runs the last batch claimed that have not committed yet
	sleeping  bool                // guarded by qmu: the committer waits for signal
	lingering bool                // guarded by qmu: … for the rest of the cohort only
	stopped   bool                // guarded by qmu: the committer is gone; commits fail
	signal    chan struct{}       // wakes the committer (capacity 1)

	// Owned by the committer's goroutine: when the cohort was handed out (see gather).
	handedOut time.Time
	timer     *time.Timer
	lingerMax time.Duration

	mu     sync.Mutex
	agents []*claimer // guarded by mu
}

// batchStore is a store that commits and claims in one round trip: the Redis store.
type batchStore interface {
	Batch(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (
		jobs []*persistence.Job, errs []error, claimed [][]*persistence.Job, claimErrs []error)
}

type commitReq struct {
	c     persistence.Commit
	reply chan commitRes
}

type commitRes struct {
	job *persistence.Job
	err error
}

// errStopping is returned for a commit asked of a committer whose node is stopping.
var errStopping = errors.New("zasync: node stopping")

func newCommitter(base context.Context, s persistence.Store, op func() (context.Context, context.CancelFunc)) *committer {
	return startCommitter(base, s, op, lingerMax)
}

// startCommitter starts a committer that lingers at most linger for a cohort.
func startCommitter(base context.Context, s persistence.Store, op func() (context.Context, context.CancelFunc), linger time.Duration) *committer {
	c := &committer{store: s, base: base, op: op, wake: make(chan struct{}, 1), signal: make(chan struct{}, 1),
		cohort: map[runKey]struct{}{}, timer: time.NewTimer(time.Hour), lingerMax: linger}
	c.timer.Stop()
	c.batch, _ = s.(batchStore)
	go c.run()
	return c
}

// commit stores o for the run of j (the job as the run has it), in a batch with whatever else
// is waiting, and returns what Store.Commit would have.
func (c *committer) commit(j *persistence.Job, o persistence.Outcome) (*persistence.Job, error) {
	r := commitReqs.Get().(*commitReq)
	r.c = persistence.Commit{Fence: j.Fence(), Outcome: o, Known: j}
	c.qmu.Lock()
	if c.stopped {
		c.qmu.Unlock()
		r.c = persistence.Commit{}
		commitReqs.Put(r)
		return nil, errStopping
	}
	c.queue = append(c.queue, r)
	delete(c.cohort, runKey{j.ID, j.Attempt})
	wake := c.sleeping && (!c.lingering || len(c.cohort) == 0 || len(c.queue) >= maxCommitBatch)
	if wake {
		c.sleeping = false
	}
	c.qmu.Unlock()
	if wake {
		select {
		case c.signal <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	res := <-r.reply // the committer answers every queued request once: in a batch, or when it stops
	r.c = persistence.Commit{}
	commitReqs.Put(r)
	return res.job, res.err
}

// commitReqs are requests with their reply channels, kept for the next commits: every job
// commits once at least.
var commitReqs = sync.Pool{New: func() any { return &commitReq{reply: make(chan commitRes, 1)} }}

// claimer is one agent's claims through the committer. It counts the agent's slots as the
// agent does (a run takes a slot until its handler returns, even when the store no longer
// counts it, its job taken by a sibling), except that it learns first when a handler has
// returned: from the run's commit, in the very batch that can claim its slot again. A claim
// on its way reserves the slots it may fill, so that claims in two batches on their way at
// once never take more than the agent's size.
type claimer struct {
	c       *committer
	params  persistence.ClaimParams // the agent's claim, Max aside
	deliver func(*messages.Claimed) // hands a claim's outcome to the agent
	// Guarded by c.mu:
	queued int             // slots reserved by claims on their way, or taken by jobs not handed over yet
	trips  int             // claims on their way
	runs   map[runKey]bool // the agent's runs going on → its handler has returned
	busy   int             // runs whose handler has not returned
	want   bool            // the agent asked to claim
	closed bool            // the agent claims no more: it drains, or it stopped
	sent   uint64          // claims started so far, each delivered to the agent in turn
}

// runKey names a run: its job and the attempt its claim gave it (a job taken from an agent and
// claimed back runs twice, at two attempts).
type runKey struct {
	id      string
	attempt int64
}

// free is how many jobs the agent may claim now. Guarded by c.mu.
func (a *claimer) free() int { return a.params.Size - a.queued - a.busy }

// register adds an agent whose claims params describe (its Max is the committer's to set);
// deliver hands it each claim's outcome, and must not block. An agent registered again (it
// was restarted) replaces its former self.
func (c *committer) register(params persistence.ClaimParams, deliver func(*messages.Claimed)) *claimer {
	a := &claimer{c: c, params: params, deliver: deliver, runs: map[runKey]bool{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, old := range c.agents {
		if old.params.Queue == params.Queue && old.params.Dispatcher == params.Dispatcher && old.params.Agent == params.Agent {
			old.closed = true
			c.agents[i] = a
			return a
		}
	}
	c.agents = append(c.agents, a)
	return a
}

// ask asks for a claim for the agent's free slots, in the next batch.
func (a *claimer) ask() {
	a.c.mu.Lock()
	a.want = !a.closed
	a.c.mu.Unlock()
	a.c.nudge()
}

// started tells that the agent makes run k of a job claimed for it.
func (a *claimer) started(k runKey) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.queued--
	a.runs[k] = false
	a.busy++
}

// ended tells that the agent's run k ended: its slot is free.
func (a *claimer) ended(k runKey) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if returned, ok := a.runs[k]; ok {
		if !returned {
			a.busy--
		}
		delete(a.runs, k)
	}
}

// owns reports whether run fence f is one of the agent's.
func (a *claimer) owns(f persistence.Fence) bool {
	return f.Owner.Dispatcher == a.params.Dispatcher && f.Owner.Agent == a.params.Agent
}

// ending counts the agent's runs that batch commits and that still take a slot: their
// handlers have returned. Guarded by c.mu.
func (a *claimer) ending(batch []*commitReq) int {
	n := 0
	for _, r := range batch {
		if a.owns(r.c.Fence) {
			if returned, ok := a.runs[runKey{r.c.Fence.ID, r.c.Fence.Attempt}]; ok && !returned {
				n++
			}
		}
	}
	return n
}

// returned marks the agent's runs that batch committed as past their handlers: their slots
// are free. Guarded by c.mu.
func (a *claimer) returned(batch []*commitReq) {
	for _, r := range batch {
		k := runKey{r.c.Fence.ID, r.c.Fence.Attempt}
		if returned, ok := a.runs[k]; ok && !returned && a.owns(r.c.Fence) {
			a.runs[k] = true
			a.busy--
		}
	}
}

// close stops claims for the agent; a claim on its way is still delivered.
func (a *claimer) close() {
	a.c.mu.Lock()
	a.closed, a.want = true, false
	a.c.mu.Unlock()
}

// unregister forgets the agent: it stopped.
func (a *claimer) unregister() {
	a.close()
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	for i, x := range a.c.agents {
		if x == a {
			a.c.agents = append(a.c.agents[:i], a.c.agents[i+1:]...)
			break
		}
	}
}

// claimsSent is how many claims were started for the agent so far. Each one's outcome is
// delivered to the agent, in the order they were started (an agent has one claim on its way
// at a time): once it has handled that many outcomes, any job these claims gave it is in its
// runs.
func (a *claimer) claimsSent() uint64 {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	return a.sent
}

// claiming reports whether jobs claimed for the agent are on their way to it.
func (a *claimer) claiming() bool {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	return a.trips > 0 || a.queued > 0
}

// nudge wakes the committer for a claim.
func (c *committer) nudge() {
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// run is the committer's goroutine: it gathers a batch and flushes it, until the node stops;
// then it fails the commits still queued, and those asked later.
func (c *committer) run() {
	defer func() {
		c.qmu.Lock()
		c.stopped = true
		queued := c.queue
		c.queue = nil
		c.qmu.Unlock()
		for _, r := range queued {
			r.reply <- commitRes{err: errStopping}
		}
	}()
	for {
		batch, ok := c.gather()
		if !ok {
			return
		}
		c.flush(batch)
	}
}

// lingerMax bounds how long a batch waits for the runs the previous batch claimed.
const lingerMax = 250 * time.Microsecond

// gather waits for the next batch: the commits queued once an agent asks to claim or a commit
// comes; but while the runs the previous batch claimed may still commit soon (lingerMax at
// most after they were handed out), it waits for all of them. Short jobs commit right after
// they start, and one batch for all of them is a round trip per cohort instead of one per
// job or two. A cohort whose handlers take longer is not waited for. ok is false when the
// node stops.
func (c *committer) gather() (batch []*commitReq, ok bool) {
	for {
		c.qmu.Lock()
		wait := time.Duration(0)
		if len(c.cohort) > 0 {
			if wait = time.Until(c.handedOut.Add(c.lingerMax)); wait <= 0 {
				clear(c.cohort)
			}
		}
		lingers := len(c.cohort) > 0
		if len(c.queue) >= maxCommitBatch || len(c.queue) > 0 && !lingers {
			batch := c.take()
			c.qmu.Unlock()
			return batch, true
		}
		c.sleeping, c.lingering = true, lingers
		c.qmu.Unlock()
		asked := false
		if lingers {
			c.timer.Reset(wait)
			select {
			case <-c.signal:
			case <-c.timer.C:
			case <-c.base.Done():
				return nil, false
			}
			if !c.timer.Stop() {
				select {
				case <-c.timer.C:
				default:
				}
			}
		} else {
			select {
			case <-c.signal:
			case <-c.wake:
				asked = true
			case <-c.base.Done():
				return nil, false
			}
		}
		c.qmu.Lock()
		c.sleeping = false
		if asked {
			batch := c.take()
			c.qmu.Unlock()
			return batch, true
		}
		c.qmu.Unlock()
	}
}

// take returns the queued commits, maxCommitBatch at most, and forgets the cohort: a batch
// lingers once. Guarded by qmu.
func (c *committer) take() []*commitReq {
	n := min(len(c.queue), maxCommitBatch)
	batch := slices.Clone(c.queue[:n])
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:]) // no references kept in the spare capacity
	c.queue = c.queue[:rest]
	clear(c.cohort)
	return batch
}

// flush commits a batch and claims for the agents that asked or whose runs it commits, then
// answers the runs and hands the agents their jobs.
func (c *committer) flush(batch []*commitReq) {
	commits := make([]persistence.Commit, len(batch))
	for i, r := range batch {
		commits[i] = r.c
	}
	var claims []persistence.ClaimParams
	var claimers, ending []*claimer
	c.mu.Lock()
	for _, a := range c.agents {
		n := a.ending(batch)
		if n > 0 {
			ending = append(ending, a)
		}
		if (!a.want && n == 0) || a.closed {
			continue
		}
		p := a.params
		if p.Filter != nil {
			// A filtered claim reads and checks in Go, on a goroutine of its own (the batch
			// must not wait for it), one at a time: it does not follow this batch's commits.
			if a.trips == 0 {
				a.want = false
				p.Max = a.free()
				c.claimAlone(a, p)
			}
			continue
		}
		a.want = false
		// The runs this batch commits free their slots in the store before its claims do;
		// runs committed by another batch on its way count once their batch is back.
		p.Max = a.free() + n
		if p.Max <= 0 {
			continue
		}
		a.queued += p.Max
		a.trips++
		a.sent++
		claims, claimers = append(claims, p), append(claimers, a)
	}
	c.mu.Unlock()
	if len(commits) == 0 && len(claims) == 0 {
		return
	}
	ctx, cancel := c.op()
	jobs, errs, got, claimErrs := c.call(ctx, commits, claims)
	cancel()
	// The committed runs' slots are free now: an agent that did not claim for them in this
	// batch claims in the next.
	again := false
	c.mu.Lock()
	for _, a := range ending {
		a.returned(batch)
		if !a.closed && !slices.Contains(claimers, a) {
			a.want, again = true, true
		}
	}
	c.mu.Unlock()
	if again {
		c.nudge()
	}
	// The new jobs first: their runs start while the committed runs finish.
	for k, a := range claimers {
		c.qmu.Lock()
		for _, j := range got[k] {
			c.cohort[runKey{j.ID, j.Attempt}] = struct{}{}
		}
		c.qmu.Unlock()
		c.claimDone(a, claims[k].Max, &messages.Claimed{Jobs: got[k], Err: claimErrs[k]})
	}
	c.handedOut = time.Now()
	for i, r := range batch {
		r.reply <- commitRes{jobs[i], errs[i]}
	}
}

// call commits and claims in one store call when the store can batch, one call after
// another when it cannot.
func (c *committer) call(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (
	jobs []*persistence.Job, errs []error, got [][]*persistence.Job, claimErrs []error) {
	if c.batch != nil {
		return c.batch.Batch(ctx, commits, claims)
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
			jobs[at[0]], errs[at[0]] = c.store.Commit(ctx, commits[at[0]].Fence, commits[at[0]].Outcome)
			continue
		}
		group := make([]persistence.Commit, len(at))
		for n, i := range at {
			group[n] = commits[i]
		}
		gj, ge, err := c.store.CommitMany(ctx, group)
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
		got[k], claimErrs[k] = c.store.Claim(ctx, p)
	}
	return jobs, errs, got, claimErrs
}

// claimAlone claims p for an agent with a filter, on a goroutine of its own: it reads and
// checks candidates in several round trips, which no batch must wait for. Guarded by c.mu.
func (c *committer) claimAlone(a *claimer, p persistence.ClaimParams) {
	if p.Max <= 0 {
		return
	}
	a.queued += p.Max
	a.trips++
	a.sent++
	go func() {
		ctx, cancel := c.op()
		jobs, err := c.store.Claim(ctx, p)
		cancel()
		c.claimDone(a, p.Max, &messages.Claimed{Jobs: jobs, Err: err})
	}()
}

// claimDone releases what a claim of reserved slots did not fill and hands its jobs over; a
// claim that lost its race to other claimers is asked again (and delivered as retried all the
// same: the agent counts every claim's outcome).
func (c *committer) claimDone(a *claimer, reserved int, r *messages.Claimed) {
	c.mu.Lock()
	a.trips--
	a.queued -= reserved - len(r.Jobs)
	conflict := errors.Is(r.Err, persistence.ErrConflict) && !a.closed
	if conflict {
		a.want = true
	}
	again := a.want
	c.mu.Unlock()
	if again {
		c.nudge()
	}
	r.Retried = conflict
	a.deliver(r)
}

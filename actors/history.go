package actors

import (
	"cmp"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// This file is a node's introspection, as zc.async's dispatcher offers it: what its
// dispatcher polled and what it ran, kept in memory, process-local and never persisted. Both
// histories are bounded, so that a node's memory stays flat however long it runs (zc.async
// 1.2 learnt this the hard way with per-period statistics).

// PollHistorySize is how many polls a node remembers: the newest 400 (zc.async's polls_size).
const PollHistorySize = 400

// JobHistorySize is how many job runs a node remembers: the 200 claimed last (zc.async's
// jobs_size). A run still going is remembered until it ends even if 200 newer ones were
// claimed since, so that what runs now can always be described.
const JobHistorySize = 200

// MaxNewJobsPerPoll is how many of the jobs an agent claimed between two polls a poll lists
// (AgentPoll.NewJobs); NewJobsCount counts them all. Without a bound, a busy agent's poll
// history would hold the ids of every job of its last 400 polls.
const MaxNewJobsPerPoll = 100

// DispatcherStatus is what a node's dispatcher is doing, as StatusInfo reports it.
type DispatcherStatus string

// The statuses of a dispatcher (zc.async's getStatusInfo).
const (
	// DispatcherStopped: the node is stopped or stopping; it polls no more.
	DispatcherStopped DispatcherStatus = "STOPPED"
	// DispatcherStarting: the node has not polled yet and its first poll is not overdue.
	DispatcherStarting DispatcherStatus = "STARTING"
	// DispatcherStuck: the next poll is overdue by more than a poll interval (a store call
	// that hangs, an actor that does not get to run).
	DispatcherStuck DispatcherStatus = "STUCK"
	// DispatcherRunning: the node polls as it should.
	DispatcherRunning DispatcherStatus = "RUNNING"
)

// StatusInfo describes a node's dispatcher.
type StatusInfo struct {
	Status       DispatcherStatus
	PollInterval time.Duration
	// SinceLastPoll is how long ago the last poll was recorded; zero before the first.
	SinceLastPoll time.Duration
	// Uptime is how long the node has been running; zero once it is stopped.
	Uptime time.Duration
	UUID   string
}

// PollInfo is one poll of a dispatcher: in each queue it serves, what each agent held and ran.
type PollInfo struct {
	// ID increases by one at each poll of the node, from 1.
	ID     int64
	Time   time.Time
	Queues map[string]QueuePoll // by queue name
}

// QueuePoll is one queue in a poll.
type QueuePoll struct {
	// Unavailable: the dispatcher is not activated in this queue (its activation was refused,
	// as when another process runs with the same UUID, or its record is gone), so its agents
	// did not claim. Agents is then nil.
	Unavailable bool
	Agents      map[string]AgentPoll // by agent name
}

// AgentPoll is one agent in a poll.
type AgentPoll struct {
	// Size is how many jobs the agent runs at once.
	Size int
	// Len is how many jobs the store lists under the agent (parked ones included); -1 when
	// that could not be read.
	Len int
	// Error is the text of the agent's last claim error, empty when its last claim went well.
	Error string
	// NewJobs are the ids the agent claimed since the previous poll, in claim order: the
	// first MaxNewJobsPerPoll of them.
	NewJobs []string
	// NewJobsCount is how many jobs the agent claimed since the previous poll.
	NewJobsCount int
	// ActiveJobs are the ids of the agent's runs going on at the poll, in claim order.
	ActiveJobs []string
}

// JobInfo describes one run of a job by this node: one claim of it by one of its agents and
// what the run made of it. A job claimed twice by this node (it was reassigned, then
// came back) is described by its newest run.
type JobInfo struct {
	ID    string
	Queue string
	Agent string
	// Call is the job's call as handler(args…).
	Call string
	// Started is when its run started; Completed when the run ended (however it
	// ended: see Ending), zero while it runs.
	Started   time.Time
	Completed time.Time
	// Failed: the run stored a failure as the job's outcome, or could not use the store to
	// store anything (Ending "failed").
	Failed bool
	// Result is the stored result (JSON) or the failure's traceback text, or for a run cut
	// short the error that cut it, at most persistence.MaxFailureText characters (then
	// persistence.TruncationMarker is appended).
	Result     string
	QuotaNames []string
	// PollID is the poll after which the job was claimed (0: before the first poll).
	PollID int64
	// Reassigned: the job was taken from this run (a sibling presumed this dispatcher dead
	// and cleaned its agent): its fenced commit fails, and the new owner is responsible for
	// it. Set by the first poll that notices it, or by the run's end.
	Reassigned bool
	// Ending is how the run ended (finished, rescheduled, waiting, interrupted, reassigned,
	// failed), empty while it runs.
	Ending string
	// Worker names the run: the id of the job actor that held the job (an agent's job
	// actors hold one job after another).
	Worker string
}

// JobDuration is a job and how long its run took (or has taken so far).
type JobDuration struct {
	ID       string
	Duration time.Duration
}

// Statistics sums up the runs of a period (zc.async's getStatistics, without its quirks:
// shortest is the shortest, and Start is the oldest end of the period). Started =
// Successful + Failed + active runs + Unknown.
type Statistics struct {
	// Started counts the runs claimed in the period.
	Started int
	// Successful counts the runs that ended storing a success, or handing the job over to
	// an inner job it waits for.
	Successful int
	// Failed counts the runs that ended otherwise: a failure stored, rescheduled by the
	// retry policy, interrupted, reassigned, or stopped by a store error.
	Failed int
	// Unknown counts jobs the polls of the period list as claimed whose runs the history no
	// longer remembers (more than JobHistorySize runs were claimed since).
	Unknown int
	// The shortest and longest runs of each kind, from their start to their end (or now,
	// for active runs); zero when there is none.
	ShortestSuccessful, LongestSuccessful JobDuration
	ShortestFailed, LongestFailed         JobDuration
	ShortestActive, LongestActive         JobDuration
	// Start and End bound the period the statistics cover: Start is the since asked for,
	// or the oldest poll or run the history remembers when that is later; End is the before
	// asked for, or now when that is earlier.
	Start, End time.Time
}

// history is a node's introspection state. Its historian actor (historian.go) is its only
// writer, told by the dispatcher (polls, runs taken away) and the agents (claims, run
// endings); the Node reads it and marks it stopped. A mutex guards it, as the Node's readers
// run on their own goroutines. Values handed out are copies.
type history struct {
	mu       sync.Mutex
	uuid     string
	interval time.Duration
	now      func() time.Time // time.Now; tests set a fake clock
	started  time.Time
	stopped  bool

	polls    ring[*PollInfo]
	lastPoll int64 // id of the newest poll; 0 before the first

	jobs    ring[*jobRecord]      // the newest JobHistorySize runs, in claim order
	byID    map[string]*jobRecord // job id → its newest run still in jobs
	running map[string]*jobRecord // run name → its run, until the run ends
	spare   *jobRecord            // a record out of jobs and running, for the next run
	agents  map[agentKey]*agentState
}

// jobRecord is one run, with its fence (the owner and attempt its claim gave it), which tells
// a job taken away from the run from one whose run has just ended (see checkRuns).
type jobRecord struct {
	info    JobInfo // its Call rendered when asked for: most runs are never looked at
	call    persistence.Call
	owner   persistence.Owner
	attempt int64
}

type agentKey struct{ queue, agent string }

// agentState is what the next poll reports of an agent besides its running jobs.
type agentState struct {
	newJobs   []string
	newCount  int
	lastError string
}

func newHistory(uuid string, interval time.Duration, now func() time.Time) *history {
	if now == nil {
		now = time.Now
	}
	return &history{
		uuid: uuid, interval: interval, now: now, started: now(),
		polls: newRing[*PollInfo](PollHistorySize), jobs: newRing[*jobRecord](JobHistorySize),
		byID: map[string]*jobRecord{}, running: map[string]*jobRecord{}, agents: map[agentKey]*agentState{},
	}
}

func (h *history) agent(queue, agent string) *agentState {
	k := agentKey{queue, agent}
	s := h.agents[k]
	if s == nil {
		s = &agentState{}
		h.agents[k] = s
	}
	return s
}

// claimed records that an agent claimed j and runs it in run worker.
// started is when its run was started: taken before the start, since a job the agent
// started with its batch can finish before the agent gets here.
func (h *history) claimed(queue, agent string, j *persistence.Job, worker string, started time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.spare
	if r == nil {
		r = &jobRecord{}
	}
	h.spare = nil
	*r = jobRecord{
		info: JobInfo{
			ID: j.ID, Queue: queue, Agent: agent, Started: started,
			QuotaNames: slices.Clone(j.QuotaNames), PollID: h.lastPoll, Worker: worker,
		},
		call: j.Call, owner: j.Owner, attempt: j.Attempt,
	}
	if old, evicted := h.jobs.push(r); evicted {
		if h.byID[old.info.ID] == old {
			delete(h.byID, old.info.ID)
		}
		// A record out of the ring whose run has ended is referenced no more: the next
		// run's record reuses it (one allocation less per job).
		if h.running[old.info.Worker] != old {
			h.spare = old
		}
	}
	h.byID[j.ID] = r
	h.running[worker] = r
	s := h.agent(queue, agent)
	s.newCount++
	if len(s.newJobs) < MaxNewJobsPerPoll {
		s.newJobs = append(s.newJobs, j.ID)
	}
}

// claimError records the outcome of an agent's claim: the text of its error, empty when it
// went well.
func (h *history) claimError(queue, agent, err string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.agent(queue, agent).lastError = err
}

// ended records how run worker ended. A run already ended is left alone.
func (h *history) ended(worker, ending string, failed bool, result string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.running[worker]
	if r == nil {
		return
	}
	delete(h.running, worker)
	r.info.Completed, r.info.Ending, r.info.Failed, r.info.Result = at, ending, failed, result
	if ending == Reassigned.String() {
		r.info.Reassigned = true
	}
}

// markReassigned records that the job of run worker was taken from it.
func (h *history) markReassigned(worker string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.running[worker]; r != nil {
		r.info.Reassigned = true
	}
}

// recordPoll records a poll: polled gives, per queue, whether it was available and each
// agent's Size and Len; the rest (new and active jobs, claim errors) comes from what the
// agents recorded. The agents' new jobs start again from none. It returns the poll's id.
func (h *history) recordPoll(polled map[string]messages.PolledQueue) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	active := map[agentKey][]*jobRecord{}
	for _, r := range h.running {
		k := agentKey{r.info.Queue, r.info.Agent}
		active[k] = append(active[k], r)
	}
	queues := make(map[string]QueuePoll, len(polled))
	for qn, pq := range polled {
		q := QueuePoll{Unavailable: pq.Unavailable}
		if pq.Agents != nil {
			q.Agents = make(map[string]AgentPoll, len(pq.Agents))
		}
		for an, pa := range pq.Agents {
			k := agentKey{qn, an}
			s := h.agent(qn, an)
			a := AgentPoll{Size: pa.Size, Len: pa.Len}
			a.NewJobs, a.NewJobsCount, s.newJobs, s.newCount = s.newJobs, s.newCount, nil, 0
			a.Error = s.lastError
			a.ActiveJobs = ids(active[k])
			q.Agents[an] = a
		}
		queues[qn] = q
	}
	h.lastPoll++
	h.polls.push(&PollInfo{ID: h.lastPoll, Time: h.now(), Queues: queues})
	return h.lastPoll
}

// ids returns the job ids of runs in claim order.
func ids(rs []*jobRecord) []string {
	slices.SortFunc(rs, func(a, b *jobRecord) int {
		return cmp.Or(a.info.Started.Compare(b.info.Started), cmp.Compare(a.info.Worker, b.info.Worker))
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.info.ID
	}
	return out
}

// stop records that the node stops: no more polls are to be expected.
func (h *history) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
}

// jobInfo describes the newest run of job id this node remembers.
func (h *history) jobInfo(id string) (JobInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.byID[id]
	if r == nil { // a long run whose record left the ring: still described while it runs
		for _, x := range h.running {
			if x.info.ID == id && (r == nil || x.info.Started.After(r.info.Started)) {
				r = x
			}
		}
	}
	if r == nil {
		return JobInfo{}, false
	}
	info := r.info
	info.Call = r.call.String()
	info.QuotaNames = slices.Clone(info.QuotaNames)
	info.Reassigned = info.Reassigned || h.missingFromLastPoll(r)
	return info, true
}

// missingFromLastPoll is zc.async's rule: a run not ended, claimed before the newest poll,
// that this poll lists neither as active nor as new for its agent (its queue was found
// unavailable) has lost its job.
func (h *history) missingFromLastPoll(r *jobRecord) bool {
	if !r.info.Completed.IsZero() || h.lastPoll <= r.info.PollID || h.polls.len() == 0 {
		return false
	}
	q, ok := h.polls.newest(0).Queues[r.info.Queue]
	if !ok || q.Unavailable {
		return true
	}
	a, ok := q.Agents[r.info.Agent]
	return !ok || !slices.Contains(a.ActiveJobs, r.info.ID) && !slices.Contains(a.NewJobs, r.info.ID)
}

// activeJobIDs lists the jobs whose runs go on now, in claim order, in queue and agent
// ("" for all).
func (h *history) activeJobIDs(queue, agent string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var rs []*jobRecord
	for _, r := range h.running {
		if matches(r.info, queue, agent) {
			rs = append(rs, r)
		}
	}
	return ids(rs)
}

func matches(info JobInfo, queue, agent string) bool {
	return (queue == "" || info.Queue == queue) && (agent == "" || info.Agent == agent)
}

// statistics sums up the runs claimed in [since, before) (a zero bound is open) by agents of
// queue and agent ("" for all).
func (h *history) statistics(since, before time.Time, queue, agent string) Statistics {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	in := func(t time.Time) bool { return !t.Before(since) && (before.IsZero() || t.Before(before)) }
	s := Statistics{End: now}
	if !before.IsZero() && before.Before(now) {
		s.End = before
	}
	var oldest time.Time
	older := func(t time.Time) {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	counted := map[*jobRecord]bool{}
	count := func(r *jobRecord) {
		older(r.info.Started)
		if counted[r] || !matches(r.info, queue, agent) || !in(r.info.Started) {
			return
		}
		counted[r] = true
		s.Started++
		switch {
		case r.info.Completed.IsZero():
			keep(&s.ShortestActive, &s.LongestActive, r.info.ID, now.Sub(r.info.Started))
		case succeeded(r.info):
			s.Successful++
			keep(&s.ShortestSuccessful, &s.LongestSuccessful, r.info.ID, r.info.Completed.Sub(r.info.Started))
		default:
			s.Failed++
			keep(&s.ShortestFailed, &s.LongestFailed, r.info.ID, r.info.Completed.Sub(r.info.Started))
		}
	}
	for i := h.jobs.len() - 1; i >= 0; i-- { // oldest first: of equal runs, the first claimed is named
		count(h.jobs.newest(i))
	}
	for _, r := range sortedRuns(h.running) { // long runs whose records left the ring
		count(r)
	}
	// Jobs the polls list as claimed whose runs are forgotten.
	unknown := map[string]bool{}
	for i := range h.polls.len() {
		p := h.polls.newest(i)
		older(p.Time)
		if !in(p.Time) {
			continue
		}
		for qn, q := range p.Queues {
			for an, a := range q.Agents {
				if (queue != "" && qn != queue) || (agent != "" && an != agent) {
					continue
				}
				for _, id := range a.NewJobs {
					if h.byID[id] == nil && !h.isRunning(id) {
						unknown[id] = true
					}
				}
			}
		}
	}
	s.Unknown = len(unknown)
	s.Started += s.Unknown
	s.Start = since
	if oldest.After(since) {
		s.Start = oldest
	}
	if s.Start.After(s.End) {
		s.Start = s.End
	}
	return s
}

// succeeded tells a run that ended well: its success stored, or its job handed over to an
// inner job it waits for.
func succeeded(info JobInfo) bool {
	return info.Ending == Finished.String() && !info.Failed || info.Ending == Waiting.String()
}

// keep updates the shortest and longest of a kind with a run of duration d. Ties keep the
// run seen first.
func keep(shortest, longest *JobDuration, id string, d time.Duration) {
	if shortest.ID == "" || d < shortest.Duration {
		*shortest = JobDuration{ID: id, Duration: d}
	}
	if longest.ID == "" || d > longest.Duration {
		*longest = JobDuration{ID: id, Duration: d}
	}
}

func (h *history) isRunning(id string) bool {
	for _, r := range h.running {
		if r.info.ID == id {
			return true
		}
	}
	return false
}

// sortedRuns returns the runs of m in claim order, so that results do not depend on map order.
func sortedRuns(m map[string]*jobRecord) []*jobRecord {
	rs := make([]*jobRecord, 0, len(m))
	for _, r := range m {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *jobRecord) int {
		return cmp.Or(a.info.Started.Compare(b.info.Started), cmp.Compare(a.info.Worker, b.info.Worker))
	})
	return rs
}

// pollsIn returns the polls recorded in [since, before) (a zero bound is open), newest first,
// at most count of them (count <= 0: all).
func (h *history) pollsIn(since, before time.Time, count int) []PollInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []PollInfo{}
	for i := range h.polls.len() {
		p := h.polls.newest(i)
		if !before.IsZero() && !p.Time.Before(before) {
			continue
		}
		if p.Time.Before(since) || (count > 0 && len(out) == count) {
			break // polls are recorded in time order
		}
		out = append(out, p.clone())
	}
	return out
}

// poll returns the poll of id, if it is still remembered.
func (h *history) poll(id int64) (PollInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	back := h.lastPoll - id
	if id < 1 || back < 0 || back >= int64(h.polls.len()) {
		return PollInfo{}, false
	}
	return h.polls.newest(int(back)).clone(), true
}

// clone copies p deeply, so that a reader cannot change the history.
func (p *PollInfo) clone() PollInfo {
	c := *p
	c.Queues = make(map[string]QueuePoll, len(p.Queues))
	for qn, q := range p.Queues {
		if q.Agents != nil {
			agents := make(map[string]AgentPoll, len(q.Agents))
			for an, a := range q.Agents {
				a.NewJobs, a.ActiveJobs = slices.Clone(a.NewJobs), slices.Clone(a.ActiveJobs)
				agents[an] = a
			}
			q.Agents = agents
		}
		c.Queues[qn] = q
	}
	return c
}

// status describes the dispatcher. A poll is due a poll interval after the previous one (the
// first at once): it is STUCK when that is overdue by more than another interval, which
// leaves room for the poll's own store calls.
func (h *history) status() StatusInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	info := StatusInfo{PollInterval: h.interval, UUID: h.uuid, Status: DispatcherRunning}
	due := h.started
	if h.polls.len() > 0 {
		last := h.polls.newest(0).Time
		info.SinceLastPoll = now.Sub(last)
		due = last.Add(h.interval)
	}
	switch {
	case h.stopped:
		info.Status = DispatcherStopped
		return info
	case now.Sub(due) > h.interval:
		info.Status = DispatcherStuck
	case h.polls.len() == 0:
		info.Status = DispatcherStarting
	}
	info.Uptime = now.Sub(h.started)
	return info
}

// runText returns what the history keeps of a run's end: whether it failed, and its result
// or failure text (or the error that cut it short), cut at persistence.MaxFailureText.
func runText(r Result) (failed bool, text string) {
	switch {
	case r.Ending == Finished && r.Job != nil && r.Job.Failed():
		f := r.Job.Failure
		text = f.Error()
		if f.Stack != "" {
			text += "\n" + f.Stack
		}
		return true, cut(text)
	case r.Ending == Finished && r.Job != nil:
		return false, cut(string(r.Job.Result))
	case r.Err != nil:
		return r.Ending == Failed, cut(r.Err.Error())
	}
	return r.Ending == Failed, ""
}

// cut keeps the first persistence.MaxFailureText characters of s, marking the cut.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= persistence.MaxFailureText {
		return s
	}
	n := 0
	for i := range s {
		if n == persistence.MaxFailureText {
			return s[:i] + persistence.TruncationMarker
		}
		n++
	}
	return s
}

// ring keeps the newest values pushed into it, at most its size.
type ring[T any] struct {
	buf   []T
	start int // index of the oldest value, once buf is full
}

func newRing[T any](size int) ring[T] { return ring[T]{buf: make([]T, 0, size)} }

// push adds v; when the ring is full the oldest value makes room and is returned.
func (r *ring[T]) push(v T) (old T, evicted bool) {
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, v)
		return old, false
	}
	old, r.buf[r.start] = r.buf[r.start], v
	r.start = (r.start + 1) % len(r.buf)
	return old, true
}

func (r *ring[T]) len() int { return len(r.buf) }

// newest returns the i-th newest value: 0 is the newest, len()-1 the oldest.
func (r *ring[T]) newest(i int) T { return r.buf[(r.start+len(r.buf)-1-i)%len(r.buf)] }

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Queries of the jobs stored in Redis (zc.async's asyncdb monitor command):
// Count, Jobs, JobStats, NextPending, LastCompleted, UUIDs, QueueStatus, and Job.Summary and
// Job.Traceback. Unlike StatusInfo and Statistics, which describe this process's dispatcher
// from memory, they read what every process shares, so any process can ask them, a program
// that only puts jobs and the zasync command included.
//
// None of them reads a whole queue in one Redis call. Pending jobs are read in windows of at
// most ScanWindow ids (16 first, doubling), each followed by one round trip for their
// records, and a query stops as soon as its Limit is reached; completed histories are read
// in windows the same way, from the newest. A count that needs no job record (pending jobs, or completed ones, with at most
// queue, agent, uuid and callbacks_completed filters) costs a few O(log n) commands per
// queue or agent instead. Jobs held by agents are read whole: there are at most as many as
// the agents have slots, plus parked composites.
//
// A query reads a queue while dispatchers change it, window after window: a job that moves
// between two reads may be missed or, once, seen in two states. That is the price of never
// blocking the queue; for a count that must be exact, use Queue.Stats.

// ScanWindow is the most pending job ids, or completed history entries, a query reads from
// one queue or agent at a time.
const ScanWindow = 200

// State is a state a query selects jobs in: the statuses of a job in a queue or an agent,
// and for completed jobs whether they succeeded or failed.
type State string

// The states of a query. A query names at least one, and at most one of StateCompleted,
// StateSucceeded and StateFailed.
const (
	StatePending   State = "pending"   // waiting in a queue, due or scheduled
	StateAssigned  State = "assigned"  // claimed by an agent, not started
	StateActive    State = "active"    // running, or waiting on an inner job
	StateCallbacks State = "callbacks" // result stored, callbacks running
	StateCompleted State = "completed" // done, from the agents' completed histories
	StateSucceeded State = "succeeded" // completed with a result
	StateFailed    State = "failed"    // completed with a failure
)

// States lists every state, in the order of a job's life.
var States = []State{StatePending, StateAssigned, StateActive, StateCallbacks, StateCompleted, StateSucceeded, StateFailed}

// ParseState reads a state's name (any case). An unknown name gives ErrInvalid.
func ParseState(s string) (State, error) {
	st := State(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(States, st) {
		return st, nil
	}
	return "", invalidf("unknown state %q (want one of %s)", s, stateNames())
}

func stateNames() string {
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ThisDispatcher, as Query.UUID or the uuid of QueueStatus, names this process's dispatcher:
// its UUID once it has started, else Config.UUID, ZASYNC_UUID or ./uuid.txt (which a query
// never creates).
const ThisDispatcher = "THIS"

// Window is a time range [Since, Before); a zero end leaves that side open. A query's window
// on a time a job does not have yet (the start of a pending job) excludes the job. A bound
// before the zero time or after the end of year 9999 is invalid.
type Window struct {
	Since  time.Time
	Before time.Time
}

// IsZero reports whether the window is open on both sides: it filters nothing.
func (w Window) IsZero() bool { return w.Since.IsZero() && w.Before.IsZero() }

// Contains reports whether t is in the window. An open window contains every time, the zero
// time included; a window with an end contains no zero time.
func (w Window) Contains(t time.Time) bool {
	if w.IsZero() {
		return true
	}
	if t.IsZero() {
		return false
	}
	return (w.Since.IsZero() || !t.Before(w.Since)) && (w.Before.IsZero() || t.Before(w.Before))
}

// Query selects stored jobs, as zc.async's asyncdb tools do. Every filter left empty
// selects everything.
type Query struct {
	// States: at least one (except for NextPending and LastCompleted, which have their own),
	// and at most one of completed, succeeded and failed. Jobs come out in this order:
	// pending jobs in claim order, merged across queues by begin_after; then jobs held by
	// agents (assigned, active, callbacks) by start time, those not started last; then
	// completed jobs, newest first.
	States []State
	// Callable is a glob (path.Match syntax: *, ?, [a-z]) on the whole handler name. Handler
	// names have no module part, so unlike zc.async a dot is just a character: "email.*"
	// matches "email.send". zasync's own jobs are named "zasync.*".
	Callable string
	// Queue is a glob on queue names.
	Queue string
	// Agent is a glob on agent names. For held and completed jobs it selects the agent that
	// holds or completed them; for pending jobs, the jobs such an agent's filter would
	// accept (see UUID).
	Agent string
	// UUID is a dispatcher UUID, or ThisDispatcher: only the jobs of its agents. For pending
	// jobs, Agent and UUID select what the agents they name (in activated dispatchers) would
	// accept. An agent's filter is code in the process that serves it, so this works only
	// for the agents of this process's running dispatcher; naming an agent of another
	// process for pending jobs gives ErrInvalid.
	UUID string
	// RequestedStart, Start, End and CallbacksCompleted select jobs by their begin_after,
	// start, end of their handler's work (result stored) and completion (callbacks done).
	RequestedStart     Window
	Start              Window
	End                Window
	CallbacksCompleted Window
	// Limit: at most this many jobs (zc.async's count:). 0: no limit. Count counts at most
	// this many too.
	Limit int
}

// selection is a set of states as bits.
type selection uint8

const (
	selPending selection = 1 << iota
	selAssigned
	selActive
	selCallbacks
	selSucceeded
	selFailed

	selHeld      = selAssigned | selActive | selCallbacks
	selCompleted = selSucceeded | selFailed
	selAll       = selPending | selHeld | selCompleted
)

// bit returns the selection of one state.
func (s State) bit() selection {
	switch s {
	case StatePending:
		return selPending
	case StateAssigned:
		return selAssigned
	case StateActive:
		return selActive
	case StateCallbacks:
		return selCallbacks
	case StateCompleted:
		return selCompleted
	case StateSucceeded:
		return selSucceeded
	case StateFailed:
		return selFailed
	}
	return 0
}

// stateOf returns the selection bit of a stored job (0 for NEW).
func stateOf(j *persistence.Job) selection {
	switch j.Status {
	case persistence.StatusPending:
		return selPending
	case persistence.StatusAssigned:
		return selAssigned
	case persistence.StatusActive:
		return selActive
	case persistence.StatusCallbacks:
		return selCallbacks
	case persistence.StatusCompleted:
		if j.Failed() {
			return selFailed
		}
		return selSucceeded
	}
	return 0
}

// plan is a checked query, with what it resolved: the states as bits, this process's UUID
// for ThisDispatcher, the queues its glob names, the store's time, and for pending jobs
// filtered by agent the filters of the agents it names, per queue.
type plan struct {
	Query
	sel    selection
	uuid   string
	queues []string
	now    time.Time
	// accept, when Agent or UUID is set and pending jobs are selected: per queue, the
	// filters of the agents named there (nil accepts everything). A queue with none
	// contributes no pending job.
	accept map[string][]func(*JobRecord) bool
}

// plan checks q and resolves it. With no state, def is selected (a query that needs states
// has def 0); states outside allowed give ErrInvalid.
func (rt *Runtime) plan(ctx context.Context, q Query, def, allowed selection) (*plan, error) {
	p := &plan{Query: q}
	if len(q.States) == 0 {
		if def == 0 {
			return nil, invalidf("query: at least one state is required (%s)", stateNames())
		}
		p.sel = def
	}
	outcomes := 0
	for _, name := range q.States {
		st, err := ParseState(string(name))
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		if st.bit()&allowed == 0 {
			return nil, invalidf("query: state %s is not allowed here", st)
		}
		if st == StateCompleted || st == StateSucceeded || st == StateFailed {
			outcomes++
		}
		p.sel |= st.bit()
	}
	if outcomes > 1 {
		return nil, invalidf(`query: can only include zero or one of the states "completed", "succeeded" or "failed"`)
	}
	for _, g := range []struct{ name, pattern string }{{"callable", q.Callable}, {"queue", q.Queue}, {"agent", q.Agent}} {
		if _, err := path.Match(g.pattern, ""); err != nil {
			return nil, invalidf("query: %s glob %q: %w", g.name, g.pattern, err)
		}
	}
	for _, w := range []struct {
		name string
		w    Window
	}{{"requested start", q.RequestedStart}, {"start", q.Start}, {"end", q.End}, {"callbacks completed", q.CallbacksCompleted}} {
		for _, t := range []struct {
			side string
			t    time.Time
		}{{"since", w.w.Since}, {"before", w.w.Before}} {
			if err := persistence.ValidateTime("query: "+w.name+" window: "+t.side, t.t); err != nil {
				return nil, err
			}
		}
		if !w.w.Since.IsZero() && !w.w.Before.IsZero() && !w.w.Since.Before(w.w.Before) {
			return nil, invalidf("query: %s window: since %s is not before %s", w.name,
				w.w.Since.Format(time.RFC3339), w.w.Before.Format(time.RFC3339))
		}
	}
	if q.Limit < 0 {
		return nil, invalidf("query: negative limit %d", q.Limit)
	}
	var err error
	if p.uuid, err = rt.resolveDispatcher(q.UUID); err != nil {
		return nil, err
	}
	if p.queues, err = rt.matchQueues(ctx, q.Queue); err != nil {
		return nil, err
	}
	if p.now, err = rt.store.Now(ctx); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if p.sel&selPending != 0 && (q.Agent != "" || p.uuid != "") {
		if err := rt.pendingFilters(ctx, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resolveDispatcher checks a UUID filter and resolves ThisDispatcher.
func (rt *Runtime) resolveDispatcher(id string) (string, error) {
	switch id {
	case "":
		return "", nil
	case ThisDispatcher:
		return rt.thisUUID()
	}
	if err := persistence.ValidateUUID(id); err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	return id, nil
}

// thisUUID returns this process's dispatcher UUID as Config.UUID documents, without creating
// uuid.txt: a query must have no side effect.
func (rt *Runtime) thisUUID() (string, error) {
	if id := rt.assigner(); id != "" {
		return id, nil
	}
	if rt.cfg.UUID != "" {
		return rt.cfg.UUID, nil
	}
	id := strings.TrimSpace(os.Getenv(UUIDEnv))
	if id == "" {
		b, err := os.ReadFile(filepath.Join(rt.cfg.uuidDir, UUIDFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", invalidf("query: %s: this process has no dispatcher UUID (no Config.UUID, %s or %s)", ThisDispatcher, UUIDEnv, UUIDFile)
		case err != nil:
			return "", fmt.Errorf("query: read the dispatcher UUID: %w", err)
		}
		id, _, _ = strings.Cut(string(b), "\n")
		id = strings.TrimSpace(id)
	}
	if err := persistence.ValidateUUID(id); err != nil {
		return "", fmt.Errorf("query: %s: %w", ThisDispatcher, err)
	}
	return id, nil
}

// matchQueues lists the known queues whose name matches glob ("" matches all), sorted.
func (rt *Runtime) matchQueues(ctx context.Context, glob string) ([]string, error) {
	all, err := rt.store.Queues(ctx)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	out := all[:0:0]
	for _, q := range all {
		if globMatch(glob, q) {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out, nil
}

// globMatch matches name against a checked glob; "" matches everything.
func globMatch(glob, name string) bool {
	if glob == "" {
		return true
	}
	ok, _ := path.Match(glob, name)
	return ok
}

// pendingFilters finds, in each queue, the agents of activated dispatchers that the query's
// Agent and UUID name, and their filters: only this process's running dispatcher's are known.
func (rt *Runtime) pendingFilters(ctx context.Context, p *plan) error {
	own := ""
	if rt.started() != nil {
		own = rt.assigner()
	}
	p.accept = make(map[string][]func(*JobRecord) bool, len(p.queues))
	for _, q := range p.queues {
		recs, err := rt.store.Dispatchers(ctx, q)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		for _, d := range recs {
			if !d.IsActivated() || (p.uuid != "" && d.UUID != p.uuid) {
				continue
			}
			for _, a := range d.Agents {
				if !globMatch(p.Agent, a.Name) {
					continue
				}
				f, ok := rt.ownFilter(own, d.UUID, q, a.Name)
				if !ok {
					return invalidf("query: cannot tell which pending jobs agent %s of dispatcher %s in queue %s would accept: "+
						"its filter is code in that process (ask from there, or leave agent and uuid out for pending jobs)", a.Name, d.UUID, q)
				}
				p.accept[q] = append(p.accept[q], f)
			}
		}
	}
	return nil
}

// ownFilter returns the filter of this process's agent name in queue q, when uuid is this
// process's running dispatcher (own); a nil filter accepts everything.
func (rt *Runtime) ownFilter(own, uuid, q, name string) (func(*JobRecord) bool, bool) {
	if own == "" || uuid != own {
		return nil, false
	}
	for _, qc := range rt.cfg.Queues {
		if qc.Name != q {
			continue
		}
		for _, a := range qc.Agents {
			if a.Name == name {
				if a.Filter == nil {
					return func(*JobRecord) bool { return true }, true
				}
				return a.Filter, true
			}
		}
	}
	return nil, false
}

// matchJob applies the filters on the job itself: callable and the time windows.
func (p *plan) matchJob(j *persistence.Job) bool {
	return globMatch(p.Callable, j.Call.Handler) &&
		p.RequestedStart.Contains(j.BeginAfter) && p.Start.Contains(j.ActiveStart) &&
		p.End.Contains(j.ActiveEnd) && p.CallbacksCompleted.Contains(j.Completed)
}

// matchOwner applies the agent and uuid filters to the agent holding or completing jobs.
func (p *plan) matchOwner(o persistence.Owner) bool {
	return globMatch(p.Agent, o.Agent) && (p.uuid == "" || o.Dispatcher == p.uuid)
}

// matchPending applies the filters to a pending job, the agents' filters included.
func (p *plan) matchPending(j *persistence.Job) bool {
	if !p.matchJob(j) {
		return false
	}
	if p.accept == nil {
		return true
	}
	var rec *JobRecord
	for _, f := range p.accept[j.Queue] {
		if rec == nil {
			rec = recordFrom(j)
		}
		if f(rec) {
			return true
		}
	}
	return false
}

// onlyWhere reports whether the query filters on nothing but where jobs are (queue, agent,
// uuid) and, for completed jobs, when they completed: a count needs no job record then.
func (p *plan) onlyWhere() bool {
	return p.Callable == "" && p.RequestedStart.IsZero() && p.Start.IsZero() && p.End.IsZero()
}

// Count counts the jobs q selects (at most q.Limit when it is set). Pending jobs, completed
// ones (not split into succeeded and failed) filtered at most by queue, agent and uuid, and
// failed ones filtered at most by queue (and for completed ones callbacks completion), are
// counted in O(log n) commands per queue or agent without reading a job; other counts read
// the jobs a window at a time.
func (rt *Runtime) Count(ctx context.Context, q Query) (int, error) {
	p, err := rt.plan(ctx, q, 0, selAll)
	if err != nil {
		return 0, err
	}
	n := 0
	full := func() bool { return p.Limit > 0 && n >= p.Limit }
	visit := func(*persistence.Job) bool { n++; return !full() }
	if p.sel&selPending != 0 {
		if p.onlyWhere() && p.CallbacksCompleted.IsZero() && p.accept == nil {
			for _, name := range p.queues {
				st, err := rt.store.Stats(ctx, name)
				if err != nil {
					return 0, fmt.Errorf("count: %w", err)
				}
				n += int(st.Due + st.Scheduled)
			}
		} else if _, err := rt.scanPending(ctx, p, visit); err != nil {
			return 0, err
		}
	}
	if p.sel&selHeld != 0 && !full() {
		if _, err := rt.scanHeld(ctx, p, visit); err != nil {
			return 0, err
		}
	}
	if p.sel&selCompleted != 0 && !full() {
		if (p.sel&selCompleted == selCompleted || p.failedIndex()) && p.onlyWhere() {
			m, err := rt.countCompleted(ctx, p)
			if err != nil {
				return 0, err
			}
			n += m
		} else if _, err := rt.scanCompleted(ctx, p, visit); err != nil {
			return 0, err
		}
	}
	if p.Limit > 0 {
		n = min(n, p.Limit)
	}
	return n, nil
}

// Jobs returns summaries of the jobs q selects, in the order Query.States describes, at
// most q.Limit of them when it is set.
func (rt *Runtime) Jobs(ctx context.Context, q Query) ([]JobSummary, error) {
	p, err := rt.plan(ctx, q, 0, selAll)
	if err != nil {
		return nil, err
	}
	out := []JobSummary{}
	err = rt.scan(ctx, p, func(j *persistence.Job) bool {
		out = append(out, summarize(j, p.now))
		return true
	})
	return out, err
}

// JobTiming is a job and a duration of it, in JobStats.
type JobTiming struct {
	Job      Ref
	Duration time.Duration
}

// JobStats sums up the jobs a query selects: how many are in each state, and the jobs that
// waited and ran the longest and the shortest. The wait is from begin_after to the start (to
// now for a job not started; negative for one scheduled later); the active time is from the
// start to the result (to now while it runs), for jobs that started. A timing is nil when no
// job has one. Unlike zc.async's, the shortest is the shortest.
type JobStats struct {
	Pending, Assigned, Active, Callbacks, Succeeded, Failed int

	LongestWait, ShortestWait     *JobTiming
	LongestActive, ShortestActive *JobTiming
}

// JobStats sums up the jobs q selects (at most q.Limit when it is set).
func (rt *Runtime) JobStats(ctx context.Context, q Query) (JobStats, error) {
	p, err := rt.plan(ctx, q, 0, selAll)
	if err != nil {
		return JobStats{}, err
	}
	var st JobStats
	longer := func(cur **JobTiming, ref Ref, d time.Duration, longest bool) {
		if *cur == nil || (longest && d > (*cur).Duration) || (!longest && d < (*cur).Duration) {
			*cur = &JobTiming{Job: ref, Duration: d}
		}
	}
	err = rt.scan(ctx, p, func(j *persistence.Job) bool {
		switch stateOf(j) {
		case selPending:
			st.Pending++
		case selAssigned:
			st.Assigned++
		case selActive:
			st.Active++
		case selCallbacks:
			st.Callbacks++
		case selSucceeded:
			st.Succeeded++
		case selFailed:
			st.Failed++
		}
		wait := waitOf(j, p.now)
		longer(&st.LongestWait, Ref(j.Ref), wait, true)
		longer(&st.ShortestWait, Ref(j.Ref), wait, false)
		if active, ok := activeOf(j, p.now); ok {
			longer(&st.LongestActive, Ref(j.Ref), active, true)
			longer(&st.ShortestActive, Ref(j.Ref), active, false)
		}
		return true
	})
	return st, err
}

// NextPending returns the pending job that q's filters select and that comes first in
// claim order (merged across queues by begin_after): the next to run. false when there is
// none. q.States must be empty or just pending; q.Limit is ignored.
func (rt *Runtime) NextPending(ctx context.Context, q Query) (JobSummary, bool, error) {
	return rt.first(ctx, q, selPending, selPending)
}

// LastCompleted returns the job that completed last among those q selects; false when there
// is none. q.States must be empty (completed) or one of completed, succeeded and failed;
// q.Limit is ignored.
func (rt *Runtime) LastCompleted(ctx context.Context, q Query) (JobSummary, bool, error) {
	return rt.first(ctx, q, selCompleted, selCompleted)
}

func (rt *Runtime) first(ctx context.Context, q Query, def, allowed selection) (JobSummary, bool, error) {
	q.Limit = 1
	p, err := rt.plan(ctx, q, def, allowed)
	if err != nil {
		return JobSummary{}, false, err
	}
	var found *persistence.Job
	err = rt.scan(ctx, p, func(j *persistence.Job) bool { found = j; return false })
	if err != nil || found == nil {
		return JobSummary{}, false, err
	}
	return summarize(found, p.now), true, nil
}

// UUIDs lists the UUIDs of the dispatchers activated in the queues whose names match the
// glob queue ("" for all), sorted and each once (zc.async's UUIDs). A dispatcher presumed
// dead but not deactivated yet is listed; QueueStatus tells which.
func (rt *Runtime) UUIDs(ctx context.Context, queue string) ([]string, error) {
	if _, err := path.Match(queue, ""); err != nil {
		return nil, invalidf("uuids: queue glob %q: %w", queue, err)
	}
	queues, err := rt.matchQueues(ctx, queue)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, q := range queues {
		recs, err := rt.store.Dispatchers(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("uuids: %w", err)
		}
		for _, d := range recs {
			if d.IsActivated() {
				out = append(out, d.UUID)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// QueueState is a queue as QueueStatus reports it: its counts and its activated
// dispatchers.
type QueueState struct {
	Queue string
	// Pending is how many jobs wait in the queue, due or scheduled (zc.async's len).
	Pending int64
	// Stats splits the counts: due, scheduled, put back, held by agents.
	Stats QueueStats
	// Dispatchers are the activated dispatchers, by UUID.
	Dispatchers []DispatcherState
}

// DispatcherState is an activated dispatcher in one queue, as QueueStatus reports it.
type DispatcherState struct {
	Queue     string
	UUID      string
	Activated time.Time
	// LastPing is zero before its first ping; SincePing is then 0.
	LastPing  time.Time
	SincePing time.Duration
	// Dead: it has not pinged within its PingDeathInterval (judged by the store's clock); a
	// sibling will deactivate it and hand its jobs on.
	Dead              bool
	PingInterval      time.Duration
	PingDeathInterval time.Duration
	// Host and PID say where it runs, as its process recorded when it started.
	Host string `json:",omitempty"`
	PID  int    `json:",omitempty"`
	// Stopped: its record is not activated (it stopped, or a sibling buried it); only
	// Dispatchers lists such records. Buried is when a sibling last found it dead and handed
	// its jobs on (zero: never), kept when it comes back.
	Stopped bool      `json:",omitempty"`
	Buried  time.Time `json:",omitzero"`
	Agents  []AgentState
}

// DispatcherEvent is one step of a dispatcher's life in a queue: it started, stopped, was
// found dead by a sibling, or came back after being presumed dead.
type DispatcherEvent struct {
	Queue      string
	Dispatcher string
	At         time.Time // store time
	Kind       DispatcherEventKind
	// Jobs is how many jobs the step took from the dispatcher and handed on (a stop's or a
	// death's cleaning; a start's clean-up of what an earlier run of it left).
	Jobs int `json:",omitempty"`
}

// DispatcherEventKind names a step of a dispatcher's life.
type DispatcherEventKind string

// The kinds of DispatcherEvent.
const (
	EventActivated DispatcherEventKind = "activated"  // it started (taking over its record if a dead run of it held it)
	EventStopped   DispatcherEventKind = "stopped"    // it stopped cleanly
	EventFoundDead DispatcherEventKind = "found_dead" // a sibling found it past its death interval and handed its jobs on
	EventCameBack  DispatcherEventKind = "came_back"  // it pinged again after being presumed dead
)

// MaxDispatcherEvents is how many events each queue keeps: the newest.
const MaxDispatcherEvents = 500

// DispatcherEvents returns the newest limit events (1 to MaxDispatcherEvents) of the
// dispatchers of the queues whose names match the glob queue ("" for all), newest first.
func (rt *Runtime) DispatcherEvents(ctx context.Context, queue string, limit int) ([]DispatcherEvent, error) {
	if _, err := path.Match(queue, ""); err != nil {
		return nil, invalidf("dispatcher events: queue glob %q: %w", queue, err)
	}
	if limit < 1 || limit > MaxDispatcherEvents {
		return nil, invalidf("dispatcher events: limit %d is not between 1 and %d", limit, MaxDispatcherEvents)
	}
	queues, err := rt.matchQueues(ctx, queue)
	if err != nil {
		return nil, err
	}
	out := []DispatcherEvent{}
	for _, q := range queues {
		evs, err := rt.store.DispatcherEvents(ctx, q, limit)
		if err != nil {
			return nil, fmt.Errorf("dispatcher events: %w", err)
		}
		for _, e := range evs {
			out = append(out, DispatcherEvent{Queue: e.Queue, Dispatcher: e.Dispatcher, At: e.At, Kind: DispatcherEventKind(e.Kind), Jobs: e.Jobs})
		}
	}
	slices.SortStableFunc(out, func(a, b DispatcherEvent) int { return b.At.Compare(a.At) })
	return out[:min(len(out), limit)], nil
}

// AgentState is one agent of a dispatcher: its size and how many jobs it holds.
type AgentState struct {
	Name string
	Size int
	Len  int
}

// QueueStatus describes the queues whose names match the glob queue ("" for all): pending
// counts and, for each activated dispatcher (only uuid's when it is set; ThisDispatcher
// for this process's), its pings and its agents with their sizes and loads (zc.async's
// status).
func (rt *Runtime) QueueStatus(ctx context.Context, queue, uuid string) ([]QueueState, error) {
	if _, err := path.Match(queue, ""); err != nil {
		return nil, invalidf("status: queue glob %q: %w", queue, err)
	}
	id, err := rt.resolveDispatcher(uuid)
	if err != nil {
		return nil, err
	}
	queues, err := rt.matchQueues(ctx, queue)
	if err != nil {
		return nil, err
	}
	now, err := rt.store.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := make([]QueueState, 0, len(queues))
	for _, q := range queues {
		st, err := rt.store.Stats(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		qs := QueueState{Queue: q, Pending: st.Due + st.Scheduled, Stats: QueueStats(st), Dispatchers: []DispatcherState{}}
		recs, err := rt.store.Dispatchers(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		for _, d := range recs {
			if !d.IsActivated() || (id != "" && d.UUID != id) {
				continue
			}
			ds, err := rt.dispatcherState(ctx, d, now)
			if err != nil {
				return nil, fmt.Errorf("status: %w", err)
			}
			qs.Dispatchers = append(qs.Dispatchers, ds)
		}
		out = append(out, qs)
	}
	return out, nil
}

// dispatcherState describes record d at now, with its agents' loads.
func (rt *Runtime) dispatcherState(ctx context.Context, d *persistence.DispatcherRecord, now time.Time) (DispatcherState, error) {
	ds := DispatcherState{Queue: d.Queue, UUID: d.UUID, Activated: d.Activated, LastPing: d.LastPing, Dead: d.Dead && d.IsActivated(),
		PingInterval: d.PingInterval, PingDeathInterval: d.PingDeathInterval, Host: d.Host, PID: d.PID,
		Stopped: !d.IsActivated(), Buried: d.Buried, Agents: []AgentState{}}
	if !d.LastPing.IsZero() {
		ds.SincePing = now.Sub(d.LastPing)
	}
	owners := make([]persistence.Owner, len(d.Agents))
	for i, a := range d.Agents {
		owners[i] = persistence.Owner{Dispatcher: d.UUID, Agent: a.Name}
	}
	loads, err := rt.store.AgentLoads(ctx, d.Queue, owners)
	if err != nil {
		return ds, err
	}
	for i, a := range d.Agents {
		ds.Agents = append(ds.Agents, AgentState{Name: a.Name, Size: a.Size, Len: loads[i]})
	}
	return ds, nil
}

// Dispatchers describes every dispatcher record of the queues whose names match the glob
// queue ("" for all), activated or not (Stopped), ordered by queue then UUID: the living,
// the dead not buried yet, and those that stopped or were buried, with when they last were.
func (rt *Runtime) Dispatchers(ctx context.Context, queue string) ([]DispatcherState, error) {
	if _, err := path.Match(queue, ""); err != nil {
		return nil, invalidf("dispatchers: queue glob %q: %w", queue, err)
	}
	queues, err := rt.matchQueues(ctx, queue)
	if err != nil {
		return nil, err
	}
	now, err := rt.store.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("dispatchers: %w", err)
	}
	out := []DispatcherState{}
	for _, q := range queues {
		recs, err := rt.store.Dispatchers(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("dispatchers: %w", err)
		}
		for _, d := range recs {
			ds, err := rt.dispatcherState(ctx, d, now)
			if err != nil {
				return nil, fmt.Errorf("dispatchers: %w", err)
			}
			out = append(out, ds)
		}
	}
	return out, nil
}

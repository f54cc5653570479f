package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
)

// inspectFixture builds jobs in every state at store level, as dispatchers would leave them.
type inspectFixture struct {
	t   *testing.T
	ctx context.Context
	rt  *Runtime
}

func newInspectFixture(t *testing.T, cfg Config) *inspectFixture {
	return &inspectFixture{t: t, ctx: testCtx(t), rt: newRuntime(t, cfg)}
}

// put puts a call of handler into queue.
func (f *inspectFixture) put(queue, handler string, opts ...PutOption) *Job {
	f.t.Helper()
	j, err := f.rt.Queue(queue).Put(f.ctx, NewCall(handler, 1), opts...)
	if err != nil {
		f.t.Fatalf("Put %s into %s: %v", handler, queue, err)
	}
	return j
}

// dispatcher registers and activates uuid in queue with agents of size 10.
func (f *inspectFixture) dispatcher(queue, uuid string, agents ...string) {
	f.t.Helper()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour}
	for _, a := range agents {
		cfg.Agents = append(cfg.Agents, persistence.AgentSpec{Name: a, Size: 10})
	}
	if err := f.rt.store.Register(f.ctx, queue, uuid, cfg); err != nil {
		f.t.Fatalf("Register %s in %s: %v", uuid, queue, err)
	}
	if _, err := f.rt.store.Activate(f.ctx, queue, uuid); err != nil {
		f.t.Fatalf("Activate %s in %s: %v", uuid, queue, err)
	}
}

// claim claims exactly the jobs given for agent o.
func (f *inspectFixture) claim(o persistence.Owner, jobs ...*Job) []*persistence.Job {
	f.t.Helper()
	want := map[string]bool{}
	for _, j := range jobs {
		want[j.ID()] = true
	}
	got, err := f.rt.store.Claim(f.ctx, persistence.ClaimParams{Queue: jobs[0].Ref().Queue, Dispatcher: o.Dispatcher,
		Agent: o.Agent, Size: 10, Filter: func(j *persistence.Job) bool { return want[j.ID] }})
	if err != nil || len(got) != len(jobs) {
		f.t.Fatalf("Claim for %s: %d jobs, %v; want %d", o, len(got), err, len(jobs))
	}
	return got
}

func (f *inspectFixture) start(j *persistence.Job) *persistence.Job {
	f.t.Helper()
	s, err := f.rt.store.Start(f.ctx, j.Fence())
	if err != nil {
		f.t.Fatalf("Start %s: %v", j.Ref, err)
	}
	return s
}

func (f *inspectFixture) commit(j *persistence.Job, o persistence.Outcome) *persistence.Job {
	f.t.Helper()
	c, err := f.rt.store.Commit(f.ctx, j.Fence(), o)
	if err != nil {
		f.t.Fatalf("Commit %s: %v", j.Ref, err)
	}
	return c
}

// refsOf returns the refs of summaries, as strings.
func refsOf(jobs []JobSummary) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Job.String()
	}
	return out
}

func refs(jobs ...*Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.String()
	}
	return out
}

// scene is jobs in every state, in two queues:
//
//	queue a: pending p1 (mail.send, begin_after -3h), p2 (sum, -1h), p4 (sum, +1h, scheduled);
//	         held by d1/main: h1 assigned, h2 active, h3 in callbacks; c3 succeeded by d1/main
//	queue b: pending p3 (mail.receive, -2h); c1 succeeded and c2 failed by d2/other
type scene struct {
	*inspectFixture
	began          time.Time // before anything was written, by the local clock
	d1, d2         string
	p1, p2, p3, p4 *Job
	h1, h2, h3     *Job
	c1, c2, c3     *Job
	// started are h2 and h3 in the order of their starts by the store's clock: h2 first,
	// unless the clock's estimate stepped back between the two.
	started [2]*Job
}

func newScene(t *testing.T) *scene {
	b := make([]byte, 4)
	rand.Read(b)
	d1 := "d1-" + hex.EncodeToString(b)
	s := &scene{inspectFixture: newInspectFixture(t, Config{UUID: d1}), d1: d1, d2: "d2-" + hex.EncodeToString(b)}
	s.began = time.Now().Add(-time.Minute) // generous: the store's clock is Redis's
	now, err := s.rt.store.Now(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.p1 = s.put("a", "mail.send", BeginAfter(now.Add(-3*time.Hour)))
	s.p2 = s.put("a", "sum", BeginAfter(now.Add(-time.Hour)))
	s.p3 = s.put("b", "mail.receive", BeginAfter(now.Add(-2*time.Hour)))
	s.p4 = s.put("a", "sum", BeginIn(time.Hour))

	s.dispatcher("a", s.d1, "main")
	s.dispatcher("b", s.d2, "other")
	o1 := persistence.Owner{Dispatcher: s.d1, Agent: "main"}
	o2 := persistence.Owner{Dispatcher: s.d2, Agent: "other"}

	s.h1, s.h2, s.h3 = s.put("a", "hold"), s.put("a", "work"), s.put("a", "work")
	claimed := s.claim(o1, s.h1, s.h2, s.h3)
	byID := map[string]*persistence.Job{}
	for _, j := range claimed {
		byID[j.ID] = j
	}
	s.start(byID[s.h2.ID()])
	h3 := s.start(byID[s.h3.ID()])
	s.commit(h3, persistence.Outcome{Result: json.RawMessage(`"halfway"`)})

	s.c1, s.c2 = s.put("b", "sum"), s.put("b", "explode")
	for _, c := range s.claim(o2, s.c1, s.c2) {
		o := persistence.Outcome{Result: json.RawMessage(`42`), Complete: true}
		if c.ID == s.c2.ID() {
			o = persistence.Outcome{Failure: persistence.NewFailure(errors.New("kumquat!"), ""), Complete: true}
		}
		s.commit(s.start(c), o)
	}
	s.c3 = s.put("a", "sum")
	s.commit(s.start(s.claim(o1, s.c3)[0]), persistence.Outcome{Result: json.RawMessage(`7`), Complete: true})
	s.started = [2]*Job{s.h2, s.h3}
	if s.summary(s.h3).ActiveStart.Before(s.summary(s.h2).ActiveStart) {
		s.started = [2]*Job{s.h3, s.h2}
	}
	return s
}

func (s *scene) count(q Query) int {
	s.t.Helper()
	n, err := s.rt.Count(s.ctx, q)
	if err != nil {
		s.t.Fatalf("Count(%+v): %v", q, err)
	}
	return n
}

func (s *scene) summary(j *Job) JobSummary {
	s.t.Helper()
	sum, err := j.Summary(s.ctx)
	if err != nil {
		s.t.Fatalf("Summary(%s): %v", j, err)
	}
	return sum
}

func (s *scene) jobs(q Query) []JobSummary {
	s.t.Helper()
	jobs, err := s.rt.Jobs(s.ctx, q)
	if err != nil {
		s.t.Fatalf("Jobs(%+v): %v", q, err)
	}
	return jobs
}

func states(names ...State) []State { return names }

// Every state counts and lists what it should, in the reference's order: pending in claim
// order merged across queues by begin_after, held by start (not started last), completed
// newest first; a query of several states lists them in that order.
func TestQueryStatesAndOrder(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	for _, c := range []struct {
		states []State
		want   int
	}{
		{states(StatePending), 4},
		{states(StateAssigned), 1},
		{states(StateActive), 1},
		{states(StateCallbacks), 1},
		{states(StateCompleted), 3},
		{states(StateSucceeded), 2},
		{states(StateFailed), 1},
		{states(StatePending, StateActive), 5},
		{states(StateAssigned, StateActive, StateCallbacks, StateCompleted), 6},
		{states("PENDING", StateFailed), 5},
	} {
		if n := s.count(Query{States: c.states}); n != c.want {
			t.Errorf("Count(%v) = %d, want %d", c.states, n, c.want)
		}
		if jobs := s.jobs(Query{States: c.states}); len(jobs) != c.want {
			t.Errorf("Jobs(%v): %v, want %d jobs", c.states, refsOf(jobs), c.want)
		}
	}

	if got, want := refsOf(s.jobs(Query{States: states(StatePending)})), refs(s.p1, s.p3, s.p2, s.p4); !slices.Equal(got, want) {
		t.Errorf("pending: %v, want %v (claim order, merged by begin_after)", got, want)
	}
	held := s.jobs(Query{States: states(StateCallbacks, StateAssigned, StateActive)})
	if got, want := refsOf(held), refs(s.started[0], s.started[1], s.h1); !slices.Equal(got, want) {
		t.Errorf("held: %v, want %v (by start, assigned last)", got, want)
	}
	done := s.jobs(Query{States: states(StateCompleted)})
	if got := refsOf(done); !sameSet(got, refs(s.c1, s.c2, s.c3)) {
		t.Errorf("completed: %v, want c1, c2, c3", got)
	}
	for i := 1; i < len(done); i++ {
		if done[i].InitialCallbacksEnd.After(done[i-1].InitialCallbacksEnd) {
			t.Errorf("completed not newest first: %v", refsOf(done))
		}
	}
	mixed := refsOf(s.jobs(Query{States: states(StateFailed, StateActive, StatePending)}))
	if want := append(refs(s.p1, s.p3, s.p2, s.p4), refs(s.h2, s.c2)...); !slices.Equal(mixed, want) {
		t.Errorf("pending, active, failed: %v, want %v", mixed, want)
	}

	// Limits: the first n in order; a count stops at the limit, pure or filtered.
	if got := refsOf(s.jobs(Query{States: states(StatePending, StateActive), Limit: 2})); !slices.Equal(got, refs(s.p1, s.p3)) {
		t.Errorf("Limit 2: %v", got)
	}
	if got := refsOf(s.jobs(Query{States: states(StatePending, StateActive), Limit: 5})); !slices.Equal(got, refs(s.p1, s.p3, s.p2, s.p4, s.h2)) {
		t.Errorf("Limit 5: %v", got)
	}
	for _, q := range []Query{
		{States: states(StatePending), Limit: 2},
		{States: states(StatePending), Callable: "*", Limit: 2},
		{States: states(StateCompleted), Limit: 2},
		{States: states(StateSucceeded, StateActive), Limit: 2},
	} {
		if n := s.count(q); n != 2 {
			t.Errorf("Count(%+v) = %d, want 2", q, n)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Each filter selects what it names.
func TestQueryFilters(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	all := states(StatePending, StateAssigned, StateActive, StateCallbacks, StateCompleted)
	past := s.began                       // before every job was put, claimed or run
	future := time.Now().Add(time.Minute) // after everything (the store's clock is Redis's, near ours)
	now := time.Now()
	for _, c := range []struct {
		name string
		q    Query
		want []*Job
	}{
		{"callable glob", Query{States: all, Callable: "mail.*"}, []*Job{s.p1, s.p3}},
		{"callable ?", Query{States: all, Callable: "s?m"}, []*Job{s.p2, s.p4, s.c3, s.c1}},
		{"callable class", Query{States: states(StatePending), Callable: "[hm]*"}, []*Job{s.p1, s.p3}},
		{"callable exact", Query{States: all, Callable: "explode"}, []*Job{s.c2}},
		{"queue", Query{States: all, Queue: "b"}, []*Job{s.p3, s.c2, s.c1}},
		{"queue glob", Query{States: states(StatePending), Queue: "[ab]"}, []*Job{s.p1, s.p3, s.p2, s.p4}},
		{"unknown queue", Query{States: all, Queue: "zzz"}, nil},
		{"agent of held", Query{States: states(StateAssigned, StateActive, StateCallbacks), Agent: "main"}, []*Job{s.started[0], s.started[1], s.h1}},
		{"agent glob of completed", Query{States: states(StateCompleted), Agent: "oth*"}, []*Job{s.c2, s.c1}},
		{"agent nobody has", Query{States: states(StateCompleted, StateActive), Agent: "nobody"}, nil},
		{"uuid of held and completed", Query{States: states(StateActive, StateSucceeded), UUID: s.d1}, []*Job{s.h2, s.c3}},
		{"uuid THIS", Query{States: states(StateCallbacks, StateCompleted), UUID: ThisDispatcher}, []*Job{s.h3, s.c3}},
		{"uuid of the other", Query{States: states(StateActive, StateFailed), UUID: s.d2}, []*Job{s.c2}},
		{"requested start since", Query{States: states(StatePending), RequestedStart: Window{Since: now.Add(-100 * time.Minute)}}, []*Job{s.p2, s.p4}},
		{"requested start before", Query{States: states(StatePending), RequestedStart: Window{Before: now.Add(-90 * time.Minute)}}, []*Job{s.p1, s.p3}},
		{"requested start between", Query{States: states(StatePending), RequestedStart: Window{Since: now.Add(-100 * time.Minute), Before: now.Add(-30 * time.Minute)}}, []*Job{s.p2}},
		{"start since", Query{States: states(StatePending, StateActive, StateCallbacks), Start: Window{Since: past}}, s.started[:]},
		{"start before", Query{States: states(StateActive, StateCompleted), Start: Window{Before: past}}, nil},
		{"end since", Query{States: states(StateCallbacks, StateFailed), End: Window{Since: past, Before: future}}, []*Job{s.h3, s.c2}},
		{"end before", Query{States: all, End: Window{Before: past}}, nil},
		{"callbacks completed", Query{States: all, CallbacksCompleted: Window{Since: past}}, []*Job{s.c3, s.c2, s.c1}},
		{"callbacks completed before", Query{States: states(StateCompleted), CallbacksCompleted: Window{Before: past}}, nil},
		{"callbacks completed and queue", Query{States: states(StateSucceeded), Queue: "b", CallbacksCompleted: Window{Since: past, Before: future}}, []*Job{s.c1}},
	} {
		got := refsOf(s.jobs(c.q))
		want := refs(c.want...)
		ordered := !slices.ContainsFunc(c.q.States, func(st State) bool {
			return st == StateCompleted || st == StateSucceeded || st == StateFailed
		})
		if ordered && !slices.Equal(got, want) || !ordered && !sameSet(got, want) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
		if n := s.count(c.q); n != len(want) {
			t.Errorf("%s: count %d, want %d", c.name, n, len(want))
		}
	}
}

// JobStats counts by state and finds the longest and shortest wait and run, the shortest
// being the shortest (zc.async reported the longest twice).
func TestJobStats(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	all := states(StatePending, StateAssigned, StateActive, StateCallbacks, StateCompleted)
	st, err := s.rt.JobStats(s.ctx, Query{States: all})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 || st.Assigned != 1 || st.Active != 1 || st.Callbacks != 1 || st.Succeeded != 2 || st.Failed != 1 {
		t.Fatalf("counts: %+v", st)
	}
	if st.LongestWait == nil || st.LongestWait.Job != s.p1.Ref() || st.LongestWait.Duration < 3*time.Hour {
		t.Errorf("longest wait %+v, want p1, 3h or more", st.LongestWait)
	}
	if st.ShortestWait == nil || st.ShortestWait.Job != s.p4.Ref() || st.ShortestWait.Duration > -50*time.Minute {
		t.Errorf("shortest wait %+v, want p4, about -1h (scheduled)", st.ShortestWait)
	}
	if st.LongestActive == nil || st.LongestActive.Job != s.h2.Ref() {
		t.Errorf("longest active %+v, want h2 (still running since before the others ran)", st.LongestActive)
	}
	// The shortest run is among the runs that ended; their lengths do not depend on now.
	var want *JobTiming
	for _, j := range s.jobs(Query{States: states(StateCallbacks, StateCompleted)}) {
		if want == nil || j.Active < want.Duration {
			want = &JobTiming{j.Job, j.Active}
		}
	}
	if st.ShortestActive == nil || *st.ShortestActive != *want || st.ShortestActive.Duration > st.LongestActive.Duration {
		t.Errorf("shortest active %+v, want %+v", st.ShortestActive, want)
	}

	st, err = s.rt.JobStats(s.ctx, Query{States: states(StatePending), Queue: "b", Limit: 1})
	if err != nil || st.Pending != 1 || st.LongestWait.Job != s.p3.Ref() || st.ShortestWait.Job != s.p3.Ref() ||
		st.LongestActive != nil || st.ShortestActive != nil {
		t.Errorf("stats of p3 alone: %+v, %v", st, err)
	}
	b, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(b), `"longest_active":null`) || !strings.Contains(string(b), `"longest_wait":{"job":"`+s.p3.String()) {
		t.Errorf("JSON: %s, %v", b, err)
	}
}

// NextPending, LastCompleted, UUIDs and QueueStatus.
func TestQueryFirstsAndStatus(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	for _, c := range []struct {
		q    Query
		want *Job
	}{
		{Query{}, s.p1},
		{Query{States: states(StatePending)}, s.p1},
		{Query{Queue: "b"}, s.p3},
		{Query{Callable: "sum"}, s.p2},
		{Query{RequestedStart: Window{Since: time.Now()}}, s.p4},
		{Query{Callable: "nothing"}, nil},
	} {
		got, ok, err := s.rt.NextPending(s.ctx, c.q)
		if err != nil || ok != (c.want != nil) || (ok && got.Job != c.want.Ref()) {
			t.Errorf("NextPending(%+v): %v %v %v, want %v", c.q, got.Job, ok, err, c.want)
		}
	}
	next, _, _ := s.rt.NextPending(s.ctx, Query{})
	if next.Status != StatusPending || next.Handler != "mail.send" || next.Call != "mail.send(1)" || next.Agent != "" || next.Wait < 3*time.Hour {
		t.Errorf("next pending: %+v", next)
	}

	for _, c := range []struct {
		q    Query
		want *Job
	}{
		{Query{Agent: "main"}, s.c3},
		{Query{States: states(StateFailed)}, s.c2},
		{Query{States: states(StateSucceeded), Queue: "b"}, s.c1},
		{Query{Callable: "explode"}, s.c2},
		{Query{CallbacksCompleted: Window{Before: s.began}}, nil},
	} {
		got, ok, err := s.rt.LastCompleted(s.ctx, c.q)
		if err != nil || ok != (c.want != nil) || (ok && got.Job != c.want.Ref()) {
			t.Errorf("LastCompleted(%+v): %v %v %v, want %v", c.q, got.Job, ok, err, c.want)
		}
	}
	all := s.jobs(Query{States: states(StateCompleted)})
	last, ok, err := s.rt.LastCompleted(s.ctx, Query{})
	if err != nil || !ok || last.Job != all[0].Job {
		t.Errorf("LastCompleted: %v %v %v, want the newest %v", last.Job, ok, err, all[0].Job)
	}

	if ids, err := s.rt.UUIDs(s.ctx, ""); err != nil || !slices.Equal(ids, []string{s.d1, s.d2}) {
		t.Errorf("UUIDs: %v %v", ids, err)
	}
	if ids, err := s.rt.UUIDs(s.ctx, "b"); err != nil || !slices.Equal(ids, []string{s.d2}) {
		t.Errorf("UUIDs of b: %v %v", ids, err)
	}
	if _, err := s.rt.store.Deactivate(s.ctx, "b", s.d2); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.rt.UUIDs(s.ctx, "*"); err != nil || !slices.Equal(ids, []string{s.d1}) {
		t.Errorf("UUIDs once d2 is deactivated: %v %v", ids, err)
	}

	status, err := s.rt.QueueStatus(s.ctx, "", "")
	if err != nil || len(status) != 2 || status[0].Queue != "a" || status[1].Queue != "b" {
		t.Fatalf("QueueStatus: %+v %v", status, err)
	}
	a := status[0]
	if a.Pending != 3 || a.Stats.Scheduled != 1 || a.Stats.Held != 3 || len(a.Dispatchers) != 1 {
		t.Errorf("queue a: %+v", a)
	}
	d := a.Dispatchers[0]
	if d.UUID != s.d1 || d.Dead || d.Activated.IsZero() || d.PingDeathInterval != time.Hour ||
		!slices.Equal(d.Agents, []AgentState{{Name: "main", Size: 10, Len: 3}}) {
		t.Errorf("dispatcher of a: %+v", d)
	}
	if b := status[1]; b.Pending != 1 || len(b.Dispatchers) != 0 {
		t.Errorf("queue b (its dispatcher deactivated): %+v", b)
	}
	if st, err := s.rt.QueueStatus(s.ctx, "a", "nobody"); err != nil || len(st) != 1 || len(st[0].Dispatchers) != 0 {
		t.Errorf("QueueStatus of a for another uuid: %+v %v", st, err)
	}
	if st, err := s.rt.QueueStatus(s.ctx, "[a]", ThisDispatcher); err != nil || len(st) != 1 || len(st[0].Dispatchers) != 1 {
		t.Errorf("QueueStatus of a for THIS: %+v %v", st, err)
	}
	b, err := json.Marshal(status)
	if err != nil || !strings.Contains(string(b), `"agents":[{"name":"main","size":10,"len":3}]`) ||
		!strings.Contains(string(b), `"ping_death_interval":"1h0m0s"`) {
		t.Errorf("status JSON: %s %v", b, err)
	}
}

// A job's summary (zc.async's keys) and its traceback in three details.
func TestJobSummaryAndTraceback(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	h3, err := s.h3.Summary(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h3.Job != s.h3.Ref() || h3.Status != StatusCallbacks || h3.Failed || string(h3.Result) != `"halfway"` ||
		h3.Agent != "main" || h3.Dispatcher != s.d1 || h3.Queue != "a" || h3.ActiveStart.IsZero() || h3.ActiveEnd.IsZero() ||
		h3.InitialCallbacksEnd.IsZero() == false || h3.Active < 0 || h3.Active != h3.ActiveEnd.Sub(h3.ActiveStart) ||
		h3.Wait != h3.ActiveStart.Sub(h3.BeginAfter) || h3.Call != "work(1)" || len(h3.Args) != 1 || h3.Attempt != 1 {
		t.Errorf("summary of h3: %+v", h3)
	}
	withCallback := s.put("a", "parent")
	cb, err := withCallback.AddCallback(s.ctx, NewCall("notify").Kwarg("to", "ops"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := withCallback.Summary(s.ctx)
	if err != nil || !slices.Equal(sum.Callbacks, []Ref{cb.Ref()}) || sum.ActiveStart.IsZero() == false || sum.Agent != "" {
		t.Errorf("summary with a callback: %+v %v", sum, err)
	}
	if cbs, _ := cb.Summary(s.ctx); cbs.Parent != withCallback.ID() || cbs.Call != `notify(to="ops")` || string(cbs.Kwargs["to"]) != `"ops"` {
		t.Errorf("callback summary: %+v", cbs)
	}
	raw, err := json.Marshal(h3)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, key := range []string{"job", "call", "args", "kwargs", "begin_after", "active_start", "active_end", "initial_callbacks_end",
		"wait", "active", "status", "failed", "result", "quota_names", "agent", "dispatcher", "queue", "callbacks"} {
		if _, ok := m[key]; !ok {
			t.Errorf("summary JSON lacks %q: %s", key, raw)
		}
	}
	if m["status"] != "callbacks" || m["result"] != "halfway" || m["initial_callbacks_end"] != nil || m["agent"] != "main" {
		t.Errorf("summary JSON: %s", raw)
	}

	c2, err := s.c2.Summary(s.ctx)
	if err != nil || !c2.Failed || c2.Result != nil || c2.Failure == nil || c2.Traceback != "Traceback: errors.errorString: kumquat!\n" {
		t.Errorf("summary of the failed c2: %+v %v", c2, err)
	}
	for _, c := range []struct {
		detail TracebackDetail
		want   []string
	}{
		{TracebackBrief, []string{"Traceback: errors.errorString: kumquat!\n"}},
		{"", []string{"errors.errorString: kumquat!\n"}},
		{TracebackDefault, []string{"errors.errorString: kumquat!\n"}},
		{TracebackVerbose, []string{"Failure of job " + s.c2.String() + ": explode(1)\n", "status completed, attempt 1", "agent other of dispatcher " + s.d2, "\nerrors.errorString: kumquat!\n"}},
	} {
		tb, ok, err := s.c2.Traceback(s.ctx, c.detail)
		if err != nil || !ok {
			t.Fatalf("Traceback(%q): %v %v", c.detail, ok, err)
		}
		for _, w := range c.want {
			if !strings.Contains(tb, w) {
				t.Errorf("Traceback(%q) = %q, want it to contain %q", c.detail, tb, w)
			}
		}
	}
	if tb, ok, err := s.c1.Traceback(s.ctx, TracebackBrief); err != nil || ok || tb != "" {
		t.Errorf("Traceback of a success: %q %v %v", tb, ok, err)
	}
	if _, _, err := s.c2.Traceback(s.ctx, "loud"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Traceback detail loud: %v, want ErrInvalid", err)
	}
	missing := s.rt.Job(Ref{Queue: "a", ID: "nope"})
	if _, err := missing.Summary(s.ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Summary of a missing job: %v", err)
	}
	if _, _, err := missing.Traceback(s.ctx, TracebackDefault); !errors.Is(err, ErrNotFound) {
		t.Errorf("Traceback of a missing job: %v", err)
	}
}

// A panic's stack is condensed to file:line:function frames in the brief traceback, and
// kept whole in the default one.
func TestTracebackFrames(t *testing.T) {
	t.Parallel()
	stack := string(debug.Stack())
	frames := stackFrames(stack)
	if len(frames) == 0 || !strings.Contains(frames[0], "inspect_test.go:") || !strings.HasSuffix(frames[0], ":github.com/zasync/zasync/runtime.TestTracebackFrames") {
		t.Fatalf("frames of %q: %q", stack, frames)
	}
	for _, f := range frames {
		if strings.Contains(f, "runtime/debug.") || strings.Contains(f, " +0x") {
			t.Errorf("frame %q", f)
		}
	}
	j := &persistence.Job{Ref: persistence.Ref{Queue: "q", ID: "x"}, Failure: persistence.NewFailure(errors.New("boom"), stack)}
	brief := formatTraceback(j, TracebackBrief)
	if want := "Traceback: errors.errorString: boom\n" + strings.Join(frames, "\n") + "\n"; brief != want {
		t.Errorf("brief %q, want %q", brief, want)
	}
	if def := formatTraceback(j, TracebackDefault); !strings.HasSuffix(def, strings.TrimRight(stack, "\n")+"\n") {
		t.Errorf("default %q lacks the stack", def)
	}
	if stackFrames("not a stack\nat all") != nil {
		t.Error("frames found in text that is not a stack")
	}
}

// A job whose handler nobody registered fails with NoHandlerError, which its traceback shows.
func TestTracebackNoHandler(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{UUID: "d-" + t.Name(), PollInterval: 20 * time.Millisecond})
	ctx := testCtx(t)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(context.Background()) })
	j := mustPut(t, rt, NewCall("nobody.handles.this"))
	out, err := j.Wait(ctx)
	if err != nil || out.Failure == nil {
		t.Fatalf("Wait: %+v %v", out, err)
	}
	tb, ok, err := j.Traceback(ctx, TracebackBrief)
	if err != nil || !ok || !strings.HasPrefix(tb, `Traceback: NoHandlerError: zasync: no handler registered for "nobody.handles.this"`) {
		t.Fatalf("traceback: %q %v %v", tb, ok, err)
	}
	if n, err := rt.Count(ctx, Query{States: states(StateFailed), Callable: "nobody.*"}); err != nil || n != 1 {
		t.Fatalf("count of failed: %d %v", n, err)
	}
}

// For pending jobs, agent and uuid select what the named agents' filters would accept; only
// this process's running dispatcher's filters are known.
func TestQueryPendingByAgentFilter(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{
		UUID:         "d-" + t.Name(),
		PollInterval: 20 * time.Millisecond,
		Queues: []QueueConfig{{Name: "f", Agents: []AgentConfig{
			{Name: "picky", Filter: func(j *JobRecord) bool { return j.Call.Handler == "mail.send" }},
			{Name: "all"},
		}}},
	})
	f := &inspectFixture{t: t, ctx: testCtx(t), rt: rt}
	// Scheduled for later, so that the running dispatcher leaves them pending.
	mail := f.put("f", "mail.send", BeginIn(time.Hour))
	sum := f.put("f", "sum", BeginIn(time.Hour))
	f.put("g", "mail.send") // a queue this process does not serve
	f.dispatcher("g", "other-process", "main")
	if n, err := rt.Count(f.ctx, Query{States: states(StatePending), Agent: "picky"}); err != nil || n != 0 {
		t.Errorf("agent picky before its dispatcher is activated: %d %v, want 0 (no such agent yet)", n, err)
	}
	if err := rt.Start(f.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(context.Background()) })
	eventually(t, "the dispatcher activated in f", func() bool {
		ids, err := rt.UUIDs(f.ctx, "f")
		return err == nil && len(ids) == 1
	})
	for _, c := range []struct {
		q    Query
		want []*Job
	}{
		{Query{States: states(StatePending), Agent: "picky"}, []*Job{mail}},
		{Query{States: states(StatePending), Agent: "all"}, []*Job{mail, sum}},
		{Query{States: states(StatePending), Agent: "p*", Callable: "sum"}, nil},
		{Query{States: states(StatePending), UUID: ThisDispatcher}, []*Job{mail, sum}},
		{Query{States: states(StatePending), UUID: "d-" + t.Name(), Agent: "picky"}, []*Job{mail}},
		{Query{States: states(StatePending), Queue: "f", Agent: "main"}, nil},
	} {
		jobs, err := rt.Jobs(f.ctx, c.q)
		if err != nil || !slices.Equal(refsOf(jobs), refs(c.want...)) {
			t.Errorf("Jobs(%+v): %v %v, want %v", c.q, refsOf(jobs), err, refs(c.want...))
		}
		if n, err := rt.Count(f.ctx, c.q); err != nil || n != len(c.want) {
			t.Errorf("Count(%+v): %d %v", c.q, n, err)
		}
	}
	// The agent of another process: its filter is unknown here.
	for _, q := range []Query{
		{States: states(StatePending), Agent: "main"},
		{States: states(StatePending), UUID: "other-process"},
	} {
		if _, err := rt.Count(f.ctx, q); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "its filter is code in that process") {
			t.Errorf("Count(%+v): %v, want ErrInvalid", q, err)
		}
	}
}

// Bad queries are refused with ErrInvalid before anything is read.
func TestQueryBadInput(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	now := time.Now()
	for _, c := range []struct {
		name string
		q    Query
		want string
	}{
		{"no state", Query{}, "at least one state is required"},
		{"unknown state", Query{States: states("sleeping")}, `unknown state "sleeping"`},
		{"succeeded and failed", Query{States: states(StateSucceeded, StateFailed)}, `zero or one of the states "completed", "succeeded" or "failed"`},
		{"completed and failed", Query{States: states(StateFailed, StatePending, StateCompleted)}, "zero or one"},
		{"bad callable glob", Query{States: states(StatePending), Callable: "[a"}, "callable glob"},
		{"bad queue glob", Query{States: states(StatePending), Queue: "[a"}, "queue glob"},
		{"bad agent glob", Query{States: states(StateActive), Agent: "a\\"}, "agent glob"},
		{"bad uuid", Query{States: states(StateActive), UUID: "a b"}, "dispatcher UUID"},
		{"empty window", Query{States: states(StateActive), Start: Window{Since: now, Before: now}}, "start window"},
		{"reversed window", Query{States: states(StateActive), RequestedStart: Window{Since: now, Before: now.Add(-time.Hour)}}, "requested start window"},
		{"negative limit", Query{States: states(StateActive), Limit: -1}, "negative limit"},
		// Bounds in microseconds since 1970 overflow past year 294,247 (and before -290,308).
		{"window past year 9999", Query{States: states(StateCompleted), End: Window{Before: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)}}, "end window: before 300000-01-01T00:00:00Z is out of range"},
		{"window before the zero time", Query{States: states(StateFailed), Start: Window{Since: time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC)}}, "start window: since"},
		{"pending window past year 9999", Query{States: states(StatePending), RequestedStart: Window{Since: persistence.MaxTime.Add(time.Microsecond)}}, "out of range"},
	} {
		_, err := rt.Count(ctx, c.q)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid with %q", c.name, err, c.want)
		}
		if _, err := rt.Jobs(ctx, c.q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Jobs: %v", c.name, err)
		}
		if _, err := rt.JobStats(ctx, c.q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: JobStats: %v", c.name, err)
		}
	}
	if _, _, err := rt.NextPending(ctx, Query{States: states(StateActive)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NextPending of active jobs: %v", err)
	}
	if _, _, err := rt.LastCompleted(ctx, Query{States: states(StatePending)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("LastCompleted of pending jobs: %v", err)
	}
	if _, _, err := rt.LastCompleted(ctx, Query{States: states(StateFailed, StateSucceeded)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("LastCompleted of succeeded and failed: %v", err)
	}
	if _, err := rt.UUIDs(ctx, "[x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("UUIDs with a bad glob: %v", err)
	}
	if _, err := rt.QueueStatus(ctx, "", "no/slash"); !errors.Is(err, ErrInvalid) {
		t.Errorf("QueueStatus with a bad uuid: %v", err)
	}
	if _, err := ParseState("x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseState: %v", err)
	}
	if st, err := ParseState(" Failed "); err != nil || st != StateFailed {
		t.Errorf("ParseState(Failed): %v %v", st, err)
	}
}

// THIS without any dispatcher UUID is refused rather than creating uuid.txt.
func TestQueryThisWithoutUUID(t *testing.T) {
	if os.Getenv(UUIDEnv) != "" {
		t.Skip(UUIDEnv + " is set")
	}
	rt := newRuntime(t, Config{})
	rt.cfg.uuidDir = t.TempDir()
	_, err := rt.Count(testCtx(t), Query{States: states(StateActive), UUID: ThisDispatcher})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no dispatcher UUID") {
		t.Fatalf("THIS without a UUID: %v", err)
	}
	if _, err := os.Stat(rt.cfg.uuidDir + "/" + UUIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a query created %s: %v", UUIDFile, err)
	}
	os.WriteFile(rt.cfg.uuidDir+"/"+UUIDFile, []byte("from-file\n"), 0o644)
	if id, err := rt.thisUUID(); err != nil || id != "from-file" {
		t.Fatalf("THIS from %s: %q %v", UUIDFile, id, err)
	}
}

// commandLog records every command sent to Redis, alone or in a pipeline.
type commandLog struct {
	mu   sync.Mutex
	cmds [][]any
	// biggest is the largest pipeline sent.
	biggest int
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.add(c)
		}
		l.mu.Lock()
		l.biggest = max(l.biggest, len(cmds))
		l.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (l *commandLog) add(c redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, c.Args())
}

// reset forgets what was recorded.
func (l *commandLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds, l.biggest = nil, 0
}

// stats returns how many commands named name were sent, and the widest index range any
// ZRANGE, LRANGE or ZREVRANGEBYSCORE … LIMIT asked for.
func (l *commandLog) stats(name string) (n, widest int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.cmds {
		cmd := strings.ToLower(c[0].(string))
		if cmd == name {
			n++
		}
		switch cmd {
		case "zrange", "lrange":
			start, _ := strconv.Atoi(toString(c[2]))
			stop, _ := strconv.Atoi(toString(c[3]))
			if stop < 0 {
				widest = max(widest, 1<<30) // to the end: unbounded
			} else {
				widest = max(widest, stop-start+1)
			}
		case "zrevrangebyscore", "zrangebyscore":
			limited := false
			for i := range c {
				if strings.EqualFold(toString(c[i]), "limit") && i+2 < len(c) {
					k, _ := strconv.Atoi(toString(c[i+2]))
					widest, limited = max(widest, k), true
				}
			}
			if !limited {
				widest = max(widest, 1<<30)
			}
		}
	}
	return n, widest
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

// loggedRuntime is a Runtime whose Redis client records its commands: miniredis, or the real
// Redis of ZASYNC_TEST_REDIS under a prefix of its own, deleted at the end.
func loggedRuntime(t *testing.T, opts ...func(*Config)) (*Runtime, *commandLog) {
	t.Helper()
	var c *redis.Client
	cfg := Config{UUID: "d-" + t.Name()}
	for _, o := range opts {
		o(&cfg)
	}
	if addr := testredis.Addr(); addr != "" {
		c = redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		cfg.Prefix = testredis.Prefix("rt")
		testredis.DeleteAtCleanup(t, addr, cfg.Prefix)
	} else {
		m := miniredis.RunT(t)
		c = redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { c.Close() })
	}
	log := &commandLog{}
	c.AddHook(log)
	cfg.Redis = c
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, log
}

// A big queue and a long history are read in windows: a pure count reads no job, a count or
// a listing with a limit stops after the first window, and a full scan never asks Redis for
// more than a window at once.
func TestQueryReadsInWindows(t *testing.T) {
	t.Parallel()
	const n = 5000
	rt, log := loggedRuntime(t)
	ctx := testCtx(t)
	calls := make([]Call, 1000)
	for i := range calls {
		calls[i] = NewCall("noop", i)
	}
	var first []*Job
	for range n / len(calls) {
		jobs, err := rt.Queue("big").PutMany(ctx, calls)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = jobs[:5]
		}
	}
	pending := states(StatePending)
	check := func(name string, run func() int, want, maxReads, maxRanges int) {
		t.Helper()
		log.reset()
		if got := run(); got != want {
			t.Fatalf("%s: %d, want %d", name, got, want)
		}
		reads, widest := log.stats("hgetall")
		ranges, _ := log.stats("zrange")
		if reads > maxReads || ranges > maxRanges || widest > ScanWindow || log.biggest > ScanWindow+10 {
			t.Fatalf("%s: %d job reads, %d ZRANGEs, widest range %d, biggest pipeline %d; want at most %d, %d, %d, %d",
				name, reads, ranges, widest, log.biggest, maxReads, maxRanges, ScanWindow, ScanWindow+10)
		}
	}
	count := func(q Query) func() int {
		return func() int {
			n, err := rt.Count(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	check("pure count", count(Query{States: pending}), n, 0, 0)
	check("pure count with a limit", count(Query{States: pending, Limit: 10}), 10, 0, 0)
	check("filtered count with a limit", count(Query{States: pending, Callable: "noop", Limit: 10}), 10, firstWindow, 1)
	check("filtered count with a bigger limit", count(Query{States: pending, Callable: "noop", Limit: 100}), 100, 16+32+64, 3)
	check("filtered count", count(Query{States: pending, Callable: "no*"}), n, n, windowsFor(n))
	if reads, _ := log.stats("hgetall"); reads != n { // the log sees what is sent
		t.Fatalf("a full filtered count read %d jobs, want each of the %d once", reads, n)
	}
	check("jobs with a limit", func() int {
		jobs, err := rt.Jobs(ctx, Query{States: pending, Limit: 5})
		if err != nil || !slices.Equal(refsOf(jobs), refs(first...)) {
			t.Fatalf("Jobs: %v %v, want %v", refsOf(jobs), err, refs(first...))
		}
		return len(jobs)
	}, 5, firstWindow, 1)
	check("next pending", func() int {
		j, ok, err := rt.NextPending(ctx, Query{Callable: "noop"})
		if err != nil || !ok || j.Job != first[0].Ref() {
			t.Fatalf("NextPending: %v %v %v", j.Job, ok, err)
		}
		return 1
	}, 1, firstWindow, 1)

	// A history of 450 jobs completed in batches that share their completion time.
	uuid := "d-" + t.Name()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 500}}}
	if err := rt.store.Register(ctx, "big", uuid, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.store.Activate(ctx, "big", uuid); err != nil {
		t.Fatal(err)
	}
	const done = 450
	for claimed := 0; claimed < done; {
		jobs, err := rt.store.Claim(ctx, persistence.ClaimParams{Queue: "big", Dispatcher: uuid, Agent: "main",
			Size: 500, Max: min(150, done-claimed), Start: true})
		if err != nil || len(jobs) == 0 {
			t.Fatalf("Claim: %d %v", len(jobs), err)
		}
		commits := make([]persistence.Commit, len(jobs))
		for i, j := range jobs {
			commits[i] = persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}}
		}
		if _, errs, err := rt.store.CommitMany(ctx, commits); err != nil || errors.Join(errs...) != nil {
			t.Fatalf("CommitMany: %v %v", errs, err)
		}
		claimed += len(jobs)
	}
	completed := states(StateCompleted)
	check("pure count of completed", count(Query{States: completed}), done, 0, 0)
	check("filtered count of completed with a limit", count(Query{States: states(StateSucceeded), Limit: 3}), 3, firstWindow, 0)
	check("last completed", func() int {
		if _, ok, err := rt.LastCompleted(ctx, Query{}); err != nil || !ok {
			t.Fatalf("LastCompleted: %v %v", ok, err)
		}
		return 1
	}, 1, firstWindow, 0)
	check("all completed", func() int {
		jobs, err := rt.Jobs(ctx, Query{States: completed})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[Ref]bool{}
		for i, j := range jobs {
			if seen[j.Job] || (i > 0 && j.InitialCallbacksEnd.After(jobs[i-1].InitialCallbacksEnd)) {
				t.Fatalf("job %d, %s: seen twice or not newest first", i, j.Job)
			}
			seen[j.Job] = true
		}
		return len(jobs)
	}, done, done, 0)
	check("pending after", count(Query{States: pending, Callable: "noop"}), n-done, n-done, windowsFor(n-done))
}

// windowsFor is how many windows a stream reads to go through n entries and find its end.
func windowsFor(n int) int {
	reads := 0
	for i := 0; ; i++ {
		reads++
		if n < window(i) {
			return reads
		}
		n -= window(i)
	}
}

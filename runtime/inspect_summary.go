package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// JobSummary describes a stored job as zc.async's asyncdb job tool does: its call, schedule,
// times, outcome and whereabouts. Times are UTC; a zero time is one the job has not reached.
type JobSummary struct {
	Job Ref
	// Call renders the call as handler(arg, …, key=value) (zc.async's repr).
	Call    string
	Handler string
	Args    []json.RawMessage
	Kwargs  map[string]json.RawMessage

	BeginAfter time.Time
	BeginBy    time.Duration // 0: no deadline
	// ActiveStart is when its handler started, ActiveEnd when its result was stored, and
	// InitialCallbacksEnd when the callbacks it had then were done (it completed).
	ActiveStart         time.Time
	ActiveEnd           time.Time
	InitialCallbacksEnd time.Time
	// Wait runs from begin_after to the start (to the result, or now, for a job that never
	// started); it is negative for a job scheduled for later. Active runs from the start to
	// the result (to now while it runs); it is 0 for a job not started.
	Wait   time.Duration
	Active time.Duration

	Status Status
	Failed bool
	// Result is the handler's result as JSON, when it succeeded.
	Result json.RawMessage
	// Failure is the job's error when it failed, and Traceback its brief traceback.
	Failure   *Failure
	Traceback string

	QuotaNames []string
	// Agent and Dispatcher hold the job (or completed it), when it is in an agent.
	Agent      string
	Dispatcher string
	Queue      string
	// Callbacks are the job's callbacks, in the order they were added; Parent is the job
	// this one is a callback of.
	Callbacks []Ref
	Parent    string
	Attempt   int64
	// EarlierAttempts are the job's earlier runs, oldest first, with how each ended: those
	// interrupted (their dispatcher stopped or was found dead), those before an operator's
	// retries (Runtime.Retry), and when a run's late commit was refused by the fence.
	EarlierAttempts []PastAttempt `json:",omitempty"`
	// RetryCounts are what its retry policy has counted of this attempt (interruptions,
	// errors, …), by name.
	RetryCounts map[string]int `json:",omitempty"`
	// RetryPolicy is the name of its retry policy; Timeout bounds each of its runs (0: none).
	RetryPolicy string        `json:",omitempty"`
	Timeout     time.Duration `json:",omitempty"`
	// Priority orders it among the due jobs of its queue (DefaultPriority unless given).
	Priority int
	// Meta is its call's metadata.
	Meta map[string]string `json:",omitempty"`
	// Composite is the composite this job is a sub-job of; Children are a composite's
	// sub-jobs, in order, and Postprocess its postprocess (Job.Parts describes them).
	Composite   string `json:",omitempty"`
	Children    []Ref  `json:",omitempty"`
	Postprocess *Ref   `json:",omitempty"`
	// UniqueKey is the unique key it was put with (Unique), "" for none.
	UniqueKey string `json:",omitempty"`
}

// summarize describes j at now.
func summarize(j *persistence.Job, now time.Time) JobSummary {
	s := JobSummary{
		Job: Ref(j.Ref), Call: j.Call.String(), Handler: j.Call.Handler,
		Args: slices.Clone(j.Call.Args), Kwargs: maps.Clone(j.Call.Kwargs),
		BeginAfter: j.BeginAfter, BeginBy: j.BeginBy,
		ActiveStart: j.ActiveStart, ActiveEnd: j.ActiveEnd, InitialCallbacksEnd: j.Completed,
		Wait: waitOf(j, now), Status: Status(j.Status), Failed: j.Failed(), Failure: failureFrom(j.Failure),
		QuotaNames: slices.Clone(j.QuotaNames), Agent: j.Holder.Agent, Dispatcher: j.Holder.Dispatcher,
		Queue: j.Queue, Parent: j.Parent, Attempt: j.Attempt, EarlierAttempts: attemptsFrom(j.Attempts),
	}
	if j.Choice != nil && j.Call.Handler == "" {
		s.Call = choiceString(j.Choice)
	}
	if j.Unique != nil {
		s.UniqueKey = j.Unique.Key
	}
	if j.Corrupt != nil {
		// Listed all the same, saying what could not be read (its claimer fails it).
		s.Call += " [corrupt record: " + strings.Join(j.Corrupt.Fields, ", ") + " unreadable]"
	}
	s.Active, _ = activeOf(j, now)
	if j.Failed() {
		s.Traceback = formatTraceback(j, TracebackBrief)
	} else if j.HasResult() {
		s.Result = j.Result
	}
	if s.Agent == "" && j.Status == persistence.StatusCompleted {
		s.Agent, s.Dispatcher = j.Owner.Agent, j.Owner.Dispatcher // an adopted callback's history is its owner's
	}
	for _, id := range j.Callbacks {
		s.Callbacks = append(s.Callbacks, Ref(j.In(id)))
	}
	s.Composite = j.Composite
	s.RetryPolicy, s.Timeout, s.Meta = j.RetryPolicy, j.Timeout, maps.Clone(j.Call.Meta)
	s.Priority = persistence.PriorityOr(j.Priority)
	if len(j.Retry) > 0 {
		s.RetryCounts = maps.Clone(map[string]int(j.Retry))
	}
	for _, id := range j.Children {
		s.Children = append(s.Children, Ref(j.In(id)))
	}
	if post, ok := actors.CompositePostprocess(&j.Call); ok {
		ref := Ref(j.In(post))
		s.Postprocess = &ref
	}
	return s
}

// choiceString renders a success/failure callback pair that has not chosen yet.
func choiceString(c *persistence.CallbackChoice) string {
	side := func(c *persistence.Call) string {
		if c == nil {
			return "pass-through"
		}
		return c.String()
	}
	return "success: " + side(c.Success) + " | failure: " + side(c.Failure)
}

// waitOf is how long j waited for its start: from begin_after to the start, or for a job that
// never started (still waiting, or failed before: a timeout) to its result, completion or now.
func waitOf(j *persistence.Job, now time.Time) time.Duration {
	end := now
	for _, t := range []time.Time{j.ActiveStart, j.ActiveEnd, j.Completed} {
		if !t.IsZero() {
			end = t
			break
		}
	}
	return end.Sub(j.BeginAfter)
}

// activeOf is how long j ran: from its start to its result, or to now while it runs; false
// when it has not started.
func activeOf(j *persistence.Job, now time.Time) (time.Duration, bool) {
	if j.ActiveStart.IsZero() {
		return 0, false
	}
	if !j.ActiveEnd.IsZero() {
		return j.ActiveEnd.Sub(j.ActiveStart), true
	}
	return now.Sub(j.ActiveStart), true
}

// Parts describes what a composite job is made of: its sub-jobs, in order, then its
// postprocess; none for another job. Parts that have expired are left out.
func (j *Job) Parts(ctx context.Context) ([]JobSummary, error) {
	rec, err := j.info(ctx)
	if err != nil {
		return nil, err
	}
	ids := slices.Clone(rec.Children)
	if post, ok := actors.CompositePostprocess(&rec.Call); ok {
		ids = append(ids, post)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	jobs, err := j.rt.store.GetMany(ctx, j.ref.Queue, ids)
	if err != nil {
		return nil, fmt.Errorf("parts of %s: %w", j.ref, err)
	}
	now, err := j.rt.store.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("parts of %s: %w", j.ref, err)
	}
	out := make([]JobSummary, 0, len(jobs))
	for _, p := range jobs {
		if p != nil {
			out = append(out, summarize(p, now))
		}
	}
	return out, nil
}

// Summary reads the job and describes it (zc.async's asyncdb job). ErrNotFound if it does not
// exist, or has expired after its retention period.
func (j *Job) Summary(ctx context.Context) (JobSummary, error) {
	rec, err := j.info(ctx)
	if err != nil {
		return JobSummary{}, err
	}
	now, err := j.rt.store.Now(ctx)
	if err != nil {
		return JobSummary{}, fmt.Errorf("job %s: %w", j.ref, err)
	}
	return summarize(rec, now), nil
}

// TracebackDetail is how much of a failure Traceback shows.
type TracebackDetail string

// The details of a traceback.
const (
	// TracebackBrief: "Traceback: Kind: message", then one file:line:function line per frame.
	TracebackBrief TracebackDetail = "brief"
	// TracebackDefault: "Kind: message", then the stack as it was recorded.
	TracebackDefault TracebackDetail = "default"
	// TracebackVerbose: the job and its run (call, status, attempt, retry counters, times,
	// holder), then the default traceback.
	TracebackVerbose TracebackDetail = "verbose"
)

// ParseTracebackDetail reads a detail's name; "" is TracebackDefault. Others give ErrInvalid.
func ParseTracebackDetail(s string) (TracebackDetail, error) {
	switch d := TracebackDetail(strings.ToLower(strings.TrimSpace(s))); d {
	case "":
		return TracebackDefault, nil
	case TracebackBrief, TracebackDefault, TracebackVerbose:
		return d, nil
	}
	return "", invalidf("unknown traceback detail %q (want brief, default or verbose)", s)
}

// Traceback reads the job and renders its failure with detail (zc.async's asyncdb
// traceback); false when it has no failure (it has not finished, or it succeeded).
// ErrNotFound if the job does not exist.
func (j *Job) Traceback(ctx context.Context, detail TracebackDetail) (string, bool, error) {
	d, err := ParseTracebackDetail(string(detail))
	if err != nil {
		return "", false, err
	}
	rec, err := j.info(ctx)
	if err != nil || !rec.Failed() {
		return "", false, err
	}
	return formatTraceback(rec, d), true, nil
}

// formatTraceback renders the failure of j with detail.
func formatTraceback(j *persistence.Job, detail TracebackDetail) string {
	f := j.Failure
	var b strings.Builder
	switch detail {
	case TracebackBrief:
		fmt.Fprintf(&b, "Traceback: %s: %s\n", f.Type, f.Message)
		for _, fr := range stackFrames(f.Stack) {
			b.WriteString(fr + "\n")
		}
		return b.String()
	case TracebackVerbose:
		fmt.Fprintf(&b, "Failure of job %s: %s\n", j.Ref, j.Call.String())
		fmt.Fprintf(&b, "  status %s, attempt %d, retry policy %s", j.Status, j.Attempt, j.RetryPolicy)
		if len(j.Retry) > 0 {
			keys := slices.Sorted(maps.Keys(j.Retry))
			counts := make([]string, len(keys))
			for i, k := range keys {
				counts[i] = fmt.Sprintf("%s=%d", k, j.Retry[k])
			}
			fmt.Fprintf(&b, " (%s)", strings.Join(counts, ", "))
		}
		b.WriteString("\n")
		for _, t := range []struct {
			name string
			at   time.Time
		}{{"begin after", j.BeginAfter}, {"active start", j.ActiveStart}, {"active end", j.ActiveEnd}, {"completed", j.Completed}} {
			if !t.at.IsZero() {
				fmt.Fprintf(&b, "  %s %s\n", t.name, t.at.Format(time.RFC3339Nano))
			}
		}
		if holder := firstOwner(j.Holder, j.Owner); !holder.IsZero() {
			fmt.Fprintf(&b, "  agent %s of dispatcher %s\n", holder.Agent, holder.Dispatcher)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s: %s\n", f.Type, f.Message)
	if f.Stack != "" {
		b.WriteString("\n" + strings.TrimRight(f.Stack, "\n") + "\n")
	}
	return b.String()
}

// firstOwner returns the first owner that is not nobody.
func firstOwner(owners ...persistence.Owner) persistence.Owner {
	for _, o := range owners {
		if !o.IsZero() {
			return o
		}
	}
	return persistence.Owner{}
}

// stackFrames condenses a Go stack (as debug.Stack writes it) to one "file:line:function"
// per frame, leaving out the frames that record the stack; nil for text that is not a Go
// stack.
func stackFrames(stack string) []string {
	var frames []string
	fn := ""
	for line := range strings.Lines(stack) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" || strings.HasPrefix(line, "goroutine "):
		case strings.HasPrefix(line, "\t"):
			if fn == "" {
				continue
			}
			loc, _, _ := strings.Cut(strings.TrimSpace(line), " +0x")
			if !strings.HasPrefix(fn, "runtime/debug.") {
				frames = append(frames, loc+":"+fn)
			}
			fn = ""
		default:
			fn = line
			if i := strings.LastIndex(fn, "("); i > 0 && strings.HasSuffix(fn, ")") {
				fn = fn[:i]
			}
		}
	}
	return frames
}

// The JSON forms of the query results: snake_case keys, times in RFC 3339 (UTC) and
// durations in Go's syntax ("1m30s"), null for a time or duration a job does not have.

func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func jsonDuration(d time.Duration) *string {
	s := d.String()
	return &s
}

func jsonString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MarshalJSON renders the summary with zc.async's keys in snake_case.
func (s JobSummary) MarshalJSON() ([]byte, error) {
	type out struct {
		Job                 string                     `json:"job"`
		Call                string                     `json:"call"`
		Handler             string                     `json:"handler"`
		Args                []json.RawMessage          `json:"args"`
		Kwargs              map[string]json.RawMessage `json:"kwargs"`
		BeginAfter          *string                    `json:"begin_after"`
		BeginBy             *string                    `json:"begin_by"`
		ActiveStart         *string                    `json:"active_start"`
		ActiveEnd           *string                    `json:"active_end"`
		InitialCallbacksEnd *string                    `json:"initial_callbacks_end"`
		Wait                *string                    `json:"wait"`
		Active              *string                    `json:"active"`
		Status              string                     `json:"status"`
		Failed              bool                       `json:"failed"`
		Result              json.RawMessage            `json:"result"`
		Failure             *Failure                   `json:"failure"`
		Traceback           *string                    `json:"traceback"`
		QuotaNames          []string                   `json:"quota_names"`
		Agent               *string                    `json:"agent"`
		Dispatcher          *string                    `json:"dispatcher"`
		Queue               string                     `json:"queue"`
		Callbacks           []string                   `json:"callbacks"`
		Parent              *string                    `json:"parent"`
		Attempt             int64                      `json:"attempt"`
	}
	o := out{
		Job: s.Job.String(), Call: s.Call, Handler: s.Handler, Args: s.Args, Kwargs: s.Kwargs,
		BeginAfter: jsonTime(s.BeginAfter), ActiveStart: jsonTime(s.ActiveStart), ActiveEnd: jsonTime(s.ActiveEnd),
		InitialCallbacksEnd: jsonTime(s.InitialCallbacksEnd), Wait: jsonDuration(s.Wait),
		Status: s.Status.String(), Failed: s.Failed, Result: s.Result, Failure: s.Failure, Traceback: jsonString(s.Traceback),
		QuotaNames: s.QuotaNames, Agent: jsonString(s.Agent), Dispatcher: jsonString(s.Dispatcher), Queue: s.Queue,
		Callbacks: make([]string, len(s.Callbacks)), Parent: jsonString(s.Parent), Attempt: s.Attempt,
	}
	if o.Args == nil {
		o.Args = []json.RawMessage{}
	}
	if o.Kwargs == nil {
		o.Kwargs = map[string]json.RawMessage{}
	}
	if o.QuotaNames == nil {
		o.QuotaNames = []string{}
	}
	if s.BeginBy > 0 {
		o.BeginBy = jsonDuration(s.BeginBy)
	}
	if !s.ActiveStart.IsZero() {
		o.Active = jsonDuration(s.Active)
	}
	for i, c := range s.Callbacks {
		o.Callbacks[i] = c.String()
	}
	return json.Marshal(o)
}

// MarshalJSON renders the timing as {"job": "queue/id", "duration": "1m30s"}.
func (t JobTiming) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Job      string `json:"job"`
		Duration string `json:"duration"`
	}{t.Job.String(), t.Duration.String()})
}

// MarshalJSON renders the statistics with snake_case keys.
func (s JobStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Pending        int        `json:"pending"`
		Assigned       int        `json:"assigned"`
		Active         int        `json:"active"`
		Callbacks      int        `json:"callbacks"`
		Succeeded      int        `json:"succeeded"`
		Failed         int        `json:"failed"`
		LongestWait    *JobTiming `json:"longest_wait"`
		ShortestWait   *JobTiming `json:"shortest_wait"`
		LongestActive  *JobTiming `json:"longest_active"`
		ShortestActive *JobTiming `json:"shortest_active"`
	}{s.Pending, s.Assigned, s.Active, s.Callbacks, s.Succeeded, s.Failed,
		s.LongestWait, s.ShortestWait, s.LongestActive, s.ShortestActive})
}

// MarshalJSON renders the queue's state with snake_case keys.
func (q QueueState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Queue       string            `json:"queue"`
		Pending     int64             `json:"pending"`
		Due         int64             `json:"due"`
		Scheduled   int64             `json:"scheduled"`
		PutBack     int64             `json:"put_back"`
		Held        int64             `json:"held"`
		Dispatchers []DispatcherState `json:"dispatchers"`
	}{q.Queue, q.Pending, q.Stats.Due, q.Stats.Scheduled, q.Stats.PutBack, q.Stats.Held, q.Dispatchers})
}

// MarshalJSON renders the dispatcher's state with snake_case keys.
func (d DispatcherState) MarshalJSON() ([]byte, error) {
	o := struct {
		UUID              string       `json:"uuid"`
		Activated         *string      `json:"activated"`
		LastPing          *string      `json:"last_ping"`
		SincePing         *string      `json:"since_ping"`
		Dead              bool         `json:"dead"`
		PingInterval      string       `json:"ping_interval"`
		PingDeathInterval string       `json:"ping_death_interval"`
		Agents            []AgentState `json:"agents"`
	}{UUID: d.UUID, Activated: jsonTime(d.Activated), LastPing: jsonTime(d.LastPing), Dead: d.Dead,
		PingInterval: d.PingInterval.String(), PingDeathInterval: d.PingDeathInterval.String(), Agents: d.Agents}
	if !d.LastPing.IsZero() {
		o.SincePing = jsonDuration(d.SincePing)
	}
	return json.Marshal(o)
}

// MarshalJSON renders the agent's state with snake_case keys.
func (a AgentState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name string `json:"name"`
		Size int    `json:"size"`
		Len  int    `json:"len"`
	}{a.Name, a.Size, a.Len})
}

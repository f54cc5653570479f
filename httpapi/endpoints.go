package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/zasync/zasync/runtime"
)

// The JSON of the endpoints. Times are UTC; a zero time is left out.

type queueJSON struct {
	Name        string           `json:"name"`
	Paused      bool             `json:"paused"`
	Pending     int64            `json:"pending"`
	Due         int64            `json:"due"`
	Scheduled   int64            `json:"scheduled"`
	PutBack     int64            `json:"put_back"`
	Held        int64            `json:"held"`
	Alive       int              `json:"dispatchers_alive"`
	Dead        int              `json:"dispatchers_dead"`
	Dispatchers []dispatcherJSON `json:"dispatchers,omitempty"`
	Quotas      []quotaJSON      `json:"quotas,omitempty"`
}

type quotaJSON struct {
	Name    string   `json:"name"`
	Size    int      `json:"size"`
	Holders []string `json:"holders"`
}

type dispatcherJSON struct {
	Queue       string      `json:"queue"`
	UUID        string      `json:"uuid"`
	Host        string      `json:"host,omitempty"`
	PID         int         `json:"pid,omitempty"`
	Alive       bool        `json:"alive"`
	State       string      `json:"state"` // alive, dead (missed its pings, not yet buried) or stopped
	Buried      time.Time   `json:"buried,omitzero"`
	Activated   time.Time   `json:"activated,omitzero"`
	LastPing    time.Time   `json:"last_ping,omitzero"`
	SincePingMS int64       `json:"since_ping_ms"`
	PingMS      int64       `json:"ping_interval_ms"`
	DeathMS     int64       `json:"ping_death_interval_ms"`
	Agents      []agentJSON `json:"agents"`
}

type agentJSON struct {
	Name string `json:"name"`
	Size int    `json:"size"`
	Held int    `json:"held"`
}

type failureJSON struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
	// Kinds are the program's registered errors the failure matched (runtime.RegisterError).
	Kinds []string `json:"kinds,omitempty"`
}

type jobJSON struct {
	Job        string          `json:"job"`
	Queue      string          `json:"queue"`
	ID         string          `json:"id"`
	Handler    string          `json:"handler"`
	Call       string          `json:"call"`
	Status     string          `json:"status"`
	Failed     bool            `json:"failed"`
	Attempt    int64           `json:"attempt"`
	Priority   int             `json:"priority"` // 1 to 9, higher claimed first; 5 unless put with one
	BeginAfter time.Time       `json:"begin_after,omitzero"`
	Start      time.Time       `json:"active_start,omitzero"`
	End        time.Time       `json:"active_end,omitzero"`
	Completed  time.Time       `json:"completed,omitzero"`
	WaitMS     int64           `json:"wait_ms"`
	ActiveMS   int64           `json:"active_ms"`
	Agent      string          `json:"agent,omitempty"`
	Dispatcher string          `json:"dispatcher,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Failure    *failureJSON    `json:"failure,omitempty"`
	Parent     string          `json:"parent,omitempty"`
	Composite  string          `json:"composite,omitempty"`
	Callbacks  []string        `json:"callbacks,omitempty"`
	Quotas     []string        `json:"quotas,omitempty"`
	UniqueKey  string          `json:"unique_key,omitempty"` // runtime.Unique's key
	// Duplicate and Debounced answer a put that found its unique key held (job.Duplicate).
	Duplicate bool           `json:"duplicate,omitempty"`
	Debounced bool           `json:"debounced,omitempty"`
	Detail    *jobDetailJSON `json:"detail,omitempty"`
}

// jobDetailJSON is what one job's endpoint adds to a listing's entry.
type jobDetailJSON struct {
	Args        []json.RawMessage          `json:"args"`
	Kwargs      map[string]json.RawMessage `json:"kwargs"`
	Traceback   string                     `json:"traceback,omitempty"`
	Attempts    []attemptJSON              `json:"earlier_attempts"`
	Annotations map[string]json.RawMessage `json:"annotations"`
	RetryPolicy string                     `json:"retry_policy,omitempty"`
	TimeoutMS   int64                      `json:"run_timeout_ms,omitempty"`
	Meta        map[string]string          `json:"meta,omitempty"`
	// Parts are a composite's sub-jobs in order, then its postprocess.
	Parts []jobJSON `json:"parts"`
	// RetryCounts are what the retry policy counted of this attempt: interruptions, errors…
	RetryCounts map[string]int `json:"retry_counts"`
}

type attemptJSON struct {
	Attempt     int64        `json:"attempt"`
	Owner       string       `json:"owner,omitempty"`
	Start       time.Time    `json:"active_start,omitzero"`
	End         time.Time    `json:"active_end,omitzero"`
	Completed   time.Time    `json:"completed,omitzero"`
	Failure     *failureJSON `json:"failure,omitempty"`
	Interrupted bool         `json:"interrupted,omitempty"`
	LateCommit  time.Time    `json:"late_commit,omitzero"`
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func failureOf(f *runtime.Failure) *failureJSON {
	if f == nil {
		return nil
	}
	return &failureJSON{Type: f.Type, Message: f.Message, Stack: f.Stack, Kinds: f.Kinds}
}

func jobOf(s runtime.JobSummary) jobJSON {
	j := jobJSON{Job: s.Job.String(), Queue: s.Job.Queue, ID: s.Job.ID, Handler: s.Handler, Call: s.Call,
		Status: s.Status.String(), Failed: s.Failed, Attempt: s.Attempt, Priority: s.Priority, BeginAfter: s.BeginAfter.UTC(),
		Start: s.ActiveStart.UTC(), End: s.ActiveEnd.UTC(), Completed: s.InitialCallbacksEnd.UTC(),
		WaitMS: ms(s.Wait), ActiveMS: ms(s.Active), Agent: s.Agent, Dispatcher: s.Dispatcher,
		Result: s.Result, Failure: failureOf(s.Failure), Parent: s.Parent, Composite: s.Composite, Quotas: s.QuotaNames}
	j.UniqueKey = s.UniqueKey
	for _, c := range s.Callbacks {
		j.Callbacks = append(j.Callbacks, c.String())
	}
	return j
}

func dispatcherOf(q string, d runtime.DispatcherState) dispatcherJSON {
	state := "alive"
	switch {
	case d.Stopped:
		state = "stopped"
	case d.Dead:
		state = "dead"
	}
	out := dispatcherJSON{Queue: q, UUID: d.UUID, Host: d.Host, PID: d.PID, Alive: state == "alive", State: state, Buried: d.Buried.UTC(),
		Activated: d.Activated.UTC(),
		LastPing:  d.LastPing.UTC(), SincePingMS: ms(d.SincePing), PingMS: ms(d.PingInterval), DeathMS: ms(d.PingDeathInterval),
		Agents: []agentJSON{}}
	for _, a := range d.Agents {
		out.Agents = append(out.Agents, agentJSON{Name: a.Name, Size: a.Size, Held: a.Len})
	}
	return out
}

func queueOf(s runtime.QueueState, withDispatchers bool) queueJSON {
	q := queueJSON{Name: s.Queue, Paused: s.Stats.Paused, Pending: s.Pending, Due: s.Stats.Due, Scheduled: s.Stats.Scheduled,
		PutBack: s.Stats.PutBack, Held: s.Stats.Held}
	for _, d := range s.Dispatchers {
		if d.Dead {
			q.Dead++
		} else {
			q.Alive++
		}
		if withDispatchers {
			q.Dispatchers = append(q.Dispatchers, dispatcherOf(s.Queue, d))
		}
	}
	return q
}

func (a *api) queues(w http.ResponseWriter, r *http.Request) {
	states, err := a.rt.QueueStatus(r.Context(), "", "")
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]queueJSON, 0, len(states))
	for _, s := range states {
		out = append(out, queueOf(s, false))
	}
	a.reply(w, map[string]any{"queues": out})
}

func (a *api) queue(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("queue")
	if err := a.rt.CheckQueue(r.Context(), name); err != nil {
		a.fail(w, err)
		return
	}
	states, err := a.rt.QueueStatus(r.Context(), name, "")
	if err != nil {
		a.fail(w, err)
		return
	}
	for _, s := range states {
		if s.Queue == name {
			out := queueOf(s, true)
			quotas, err := a.rt.Queue(name).Quotas(r.Context())
			if err != nil {
				a.fail(w, err)
				return
			}
			out.Quotas = []quotaJSON{}
			for _, qi := range quotas {
				holders := []string{}
				for _, id := range qi.Holders {
					holders = append(holders, name+"/"+id)
				}
				out.Quotas = append(out.Quotas, quotaJSON{Name: qi.Name, Size: qi.Size, Holders: holders})
			}
			a.reply(w, out)
			return
		}
	}
	a.fail(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no queue " + name})
}

// msParam reads a duration in milliseconds from query parameter name, def when it is absent.
func msParam(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, badRequest("%s %q: want a positive number of milliseconds", name, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// limitParam reads the query's limit: def when it is absent, else a number from 1 to max.
func limitParam(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("limit %q: want 1 to %d", s, max)
	}
	return n, nil
}

func (a *api) throughput(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("queue")
	if err := a.rt.CheckQueue(r.Context(), name); err != nil {
		a.fail(w, err)
		return
	}
	step, err := msParam(r, "step_ms", time.Minute)
	if err != nil {
		a.fail(w, err)
		return
	}
	span, err := msParam(r, "span_ms", time.Hour)
	if err != nil {
		a.fail(w, err)
		return
	}
	points, err := a.rt.Queue(name).Throughput(r.Context(), span, step)
	if err != nil {
		a.fail(w, err)
		return
	}
	type point struct {
		Start     time.Time `json:"start"`
		Completed int64     `json:"completed"`
		Failed    int64     `json:"failed"`
	}
	out := make([]point, len(points))
	for i, p := range points {
		out[i] = point{Start: p.Start.UTC(), Completed: p.Completed, Failed: p.Failed}
	}
	a.reply(w, map[string]any{"queue": name, "step_ms": ms(step), "points": out})
}

func (a *api) pause(_ http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("queue")
	var changed bool
	var err error
	switch r.PathValue("action") {
	case "pause":
		changed, err = a.rt.PauseQueue(r.Context(), name)
	case "resume":
		changed, err = a.rt.ResumeQueue(r.Context(), name)
	default:
		return nil, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such action on a queue: " + r.PathValue("action") + " (pause, resume)"}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"queue": name, "paused": r.PathValue("action") == "pause", "changed": changed}, nil
}

func (a *api) dispatchers(w http.ResponseWriter, r *http.Request) {
	list, err := a.rt.Dispatchers(r.Context(), r.URL.Query().Get("queue"))
	if err != nil {
		a.fail(w, err)
		return
	}
	out := []dispatcherJSON{}
	for _, d := range list {
		out = append(out, dispatcherOf(d.Queue, d))
	}
	a.reply(w, map[string]any{"dispatchers": out})
}

// eventJSON is one step of a dispatcher's life, as GET /v1/dispatchers/events gives it.
type eventJSON struct {
	Queue      string    `json:"queue"`
	Dispatcher string    `json:"dispatcher"`
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	Jobs       int       `json:"jobs"`
}

// defaultEvents is how many events GET /v1/dispatchers/events gives without a limit.
const defaultEvents = 100

func (a *api) dispatcherEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, defaultEvents, runtime.MaxDispatcherEvents)
	if err != nil {
		a.fail(w, err)
		return
	}
	evs, err := a.rt.DispatcherEvents(r.Context(), r.URL.Query().Get("queue"), limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]eventJSON, len(evs))
	for i, e := range evs {
		out[i] = eventJSON{Queue: e.Queue, Dispatcher: e.Dispatcher, At: e.At.UTC(), Kind: string(e.Kind), Jobs: e.Jobs}
	}
	a.reply(w, map[string]any{"events": out})
}

// Pages of /v1/jobs.
const (
	defaultPage = 50
	maxPage     = 1000
)

// cursor is where a page of /v1/jobs goes on: after Skip jobs of the query, or, for a query
// of completed jobs alone (newest first), at jobs completed before Before, skipping the Skip
// ones completed at Before itself that the last page had.
type cursor struct {
	Skip   int       `json:"s"`
	Before time.Time `json:"b,omitzero"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // plain data
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Skip < 0 {
		return c, badRequest("cursor %q is not one this API gave", s)
	}
	return c, nil
}

// onlyCompleted tells whether a query selects completed jobs alone.
func onlyCompleted(q runtime.Query) bool {
	for _, s := range q.States {
		if s != runtime.StateCompleted && s != runtime.StateSucceeded && s != runtime.StateFailed {
			return false
		}
	}
	return len(q.States) > 0
}

func (a *api) jobs(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := runtime.Query{Queue: v.Get("queue"), Callable: v.Get("callable"), Agent: v.Get("agent"), UUID: v.Get("uuid")}
	for _, s := range v["state"] {
		st, err := runtime.ParseState(s)
		if err != nil {
			a.fail(w, err)
			return
		}
		q.States = append(q.States, st)
	}
	for _, win := range []struct {
		name string
		w    *runtime.Window
	}{{"completed", &q.CallbacksCompleted}, {"started", &q.Start}} {
		for _, side := range []struct {
			name string
			t    *time.Time
		}{{"_since", &win.w.Since}, {"_before", &win.w.Before}} {
			if s := v.Get(win.name + side.name); s != "" {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					a.fail(w, badRequest("%s%s %q: want an RFC 3339 time", win.name, side.name, s))
					return
				}
				*side.t = t
			}
		}
	}
	page, err := limitParam(r, defaultPage, maxPage)
	if err != nil {
		a.fail(w, err)
		return
	}
	c, err := decodeCursor(v.Get("cursor"))
	if err != nil {
		a.fail(w, err)
		return
	}
	timed := onlyCompleted(q)
	if timed && !c.Before.IsZero() && (q.CallbacksCompleted.Before.IsZero() || c.Before.Before(q.CallbacksCompleted.Before)) {
		q.CallbacksCompleted.Before = c.Before
	}
	q.Limit = c.Skip + page + 1 // one more tells whether there is a next page
	list, err := a.rt.Jobs(r.Context(), q)
	if err != nil {
		a.fail(w, err)
		return
	}
	list = list[min(c.Skip, len(list)):]
	out := map[string]any{}
	if len(list) > page {
		list = list[:page]
		next := cursor{Skip: c.Skip + page}
		if timed {
			// Jobs completed at the last one's time: the next page is before that time and
			// a microsecond, skipping them.
			last := list[len(list)-1].InitialCallbacksEnd
			next = cursor{Before: last.Add(time.Microsecond)}
			for _, s := range list {
				if s.InitialCallbacksEnd.Equal(last) {
					next.Skip++
				}
			}
			if last.Add(time.Microsecond).Equal(c.Before) {
				next.Skip += c.Skip // the same instant again: keep skipping what came before
			}
		}
		out["next_cursor"] = next.encode()
	}
	jobs := make([]jobJSON, len(list))
	for i, s := range list {
		jobs[i] = jobOf(s)
	}
	out["jobs"] = jobs
	a.reply(w, out)
}

// ref reads the job of a request's path.
func ref(r *http.Request) (runtime.Ref, error) {
	ref := runtime.Ref{Queue: r.PathValue("queue"), ID: r.PathValue("id")}
	if err := ref.Validate(); err != nil {
		return ref, err
	}
	return ref, nil
}

func (a *api) job(w http.ResponseWriter, r *http.Request) {
	ref, err := ref(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	j := a.rt.Job(ref)
	s, err := j.Summary(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	ann, err := j.Annotations(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := jobOf(s)
	d := &jobDetailJSON{Args: s.Args, Kwargs: s.Kwargs, Traceback: s.Traceback, Attempts: []attemptJSON{}, Annotations: ann,
		RetryCounts: s.RetryCounts, RetryPolicy: s.RetryPolicy, TimeoutMS: ms(s.Timeout), Meta: s.Meta}
	if d.RetryCounts == nil {
		d.RetryCounts = map[string]int{}
	}
	if d.Args == nil {
		d.Args = []json.RawMessage{}
	}
	if d.Kwargs == nil {
		d.Kwargs = map[string]json.RawMessage{}
	}
	if d.Annotations == nil {
		d.Annotations = map[string]json.RawMessage{}
	}
	for _, p := range s.EarlierAttempts {
		d.Attempts = append(d.Attempts, attemptJSON{Attempt: p.Attempt, Owner: p.Owner, Start: p.Start.UTC(), End: p.End.UTC(),
			Completed: p.Completed.UTC(), Failure: failureOf(p.Failure), Interrupted: p.Interrupted, LateCommit: p.LateCommit.UTC()})
	}
	parts, err := j.Parts(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	d.Parts = make([]jobJSON, len(parts))
	for i, p := range parts {
		d.Parts[i] = jobOf(p)
	}
	out.Detail = d
	a.reply(w, out)
}

func (a *api) jobAction(_ http.ResponseWriter, r *http.Request) (any, error) {
	ref, err := ref(r)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"job": ref.String(), "action": r.PathValue("action")}
	parts := func(refs []runtime.Ref) []string {
		s := []string{}
		for _, p := range refs {
			s = append(s, p.String())
		}
		return s
	}
	switch r.PathValue("action") {
	case "cancel":
		rep, err := a.rt.Cancel(r.Context(), ref)
		if err != nil {
			return nil, err
		}
		out["was"], out["parts"] = rep.Was.String(), parts(rep.Parts)
	case "retry":
		rep, err := a.rt.Retry(r.Context(), ref)
		if err != nil {
			return nil, err
		}
		out["earlier_attempts"] = rep.Attempts
	case "delete":
		rep, err := a.rt.Delete(r.Context(), ref)
		if err != nil {
			return nil, err
		}
		out["was"], out["parts"] = rep.Was.String(), parts(rep.Parts)
	default:
		return nil, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such action on a job: " + r.PathValue("action") + " (cancel, retry, delete)"}
	}
	return out, nil
}

// decodeBody reads a request's JSON body into v, refusing unknown keys.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}

// bulkJSON is a bulk action's report.
type bulkJSON struct {
	Matched int      `json:"matched"`
	Done    int      `json:"done"`
	Refused int      `json:"refused"`
	More    bool     `json:"more"`
	DryRun  bool     `json:"dry_run"`
	Jobs    []string `json:"jobs,omitempty"`
}

func bulkOf(rep runtime.BulkReport, dry bool) bulkJSON {
	out := bulkJSON{Matched: rep.Matched, Done: rep.Done, Refused: rep.Refused, More: rep.More, DryRun: dry}
	for _, j := range rep.Jobs {
		out.Jobs = append(out.Jobs, j.String())
	}
	return out
}

func (a *api) bulk(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		States   []string `json:"states"`
		Queue    string   `json:"queue"`
		Callable string   `json:"callable"`
		Agent    string   `json:"agent"`
		UUID     string   `json:"uuid"`
		Limit    int      `json:"limit"`
		DryRun   bool     `json:"dry_run"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	q := runtime.Query{Queue: body.Queue, Callable: body.Callable, Agent: body.Agent, UUID: body.UUID, Limit: body.Limit}
	for _, s := range body.States {
		st, err := runtime.ParseState(s)
		if err != nil {
			return nil, err
		}
		q.States = append(q.States, st)
	}
	var opts []runtime.BulkOption
	if body.DryRun {
		opts = append(opts, runtime.DryRun())
	}
	var rep runtime.BulkReport
	var err error
	switch r.PathValue("action") {
	case "cancel":
		rep, err = a.rt.CancelMatching(r.Context(), q, opts...)
	case "retry":
		rep, err = a.rt.RetryMatching(r.Context(), q, opts...)
	case "delete":
		rep, err = a.rt.DeleteMatching(r.Context(), q, opts...)
	default:
		return nil, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such bulk action: " + r.PathValue("action") + " (cancel, retry, delete)"}
	}
	if err != nil && !errors.Is(err, runtime.ErrInvalid) && rep.Matched > 0 {
		// Stopped part way: what was done is said with the error.
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
			msg: err.Error() + " (done " + strconv.Itoa(rep.Done) + " of " + strconv.Itoa(rep.Matched) + ")"}
	}
	if err != nil {
		return nil, err
	}
	return bulkOf(rep, body.DryRun), nil
}

func (a *api) purge(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		State       string `json:"state"`
		OlderThanMS *int64 `json:"older_than_ms"`
		Queue       string `json:"queue"`
		Limit       int    `json:"limit"`
		DryRun      bool   `json:"dry_run"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.OlderThanMS == nil {
		return nil, badRequest("purge needs older_than_ms (0: every completed job)")
	}
	st, err := runtime.ParseState(body.State)
	if err != nil {
		return nil, err
	}
	var opts []runtime.BulkOption
	if body.DryRun {
		opts = append(opts, runtime.DryRun())
	}
	rep, err := a.rt.Purge(r.Context(), st, body.Queue, time.Duration(*body.OlderThanMS)*time.Millisecond, body.Limit, opts...)
	if err != nil {
		return nil, err
	}
	return bulkOf(rep, body.DryRun), nil
}

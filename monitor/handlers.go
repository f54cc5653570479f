package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zasync/zasync/runtime"
)

// DefaultPollCount is how many polls /polls returns when no count is given (zc.async's 3).
const DefaultPollCount = 3

// monitor answers the endpoints for one runtime.
type monitor struct {
	rt       *runtime.Runtime
	logger   *slog.Logger
	gatherer prometheus.Gatherer
	now      func() time.Time
}

// endpoint is one route: its pattern, the query parameters it takes, what it says of itself
// in the index, and its handler.
type endpoint struct {
	path    string
	params  []string
	summary string
	serve   func(m *monitor, r *http.Request, q query) (any, error)
}

var endpoints = []endpoint{
	{"/status", nil, "the dispatcher's status (STOPPED, STARTING, RUNNING or STUCK), poll interval, time since its last poll, uptime and UUID",
		(*monitor).status},
	{"/uuid", nil, "the dispatcher's UUID", (*monitor).uuid},
	{"/utcnow", nil, "the current time in UTC", (*monitor).utcnow},
	{"/jobs", []string{"queue", "agent"}, "ids of the jobs running in this process now, in claim order", (*monitor).jobs},
	{"/job/{id}", nil, "what this process knows of its newest run of a job", (*monitor).job},
	{"/jobstats", []string{"at", "before", "since", "queue", "agent"},
		"statistics of the runs this process claimed in a period: counts, shortest and longest runs", (*monitor).jobstats},
	{"/poll", []string{"at", "before"}, "one poll of the dispatcher, the newest by default", (*monitor).poll},
	{"/polls", []string{"at", "before", "since", "count"}, "recent polls of the dispatcher, newest first (3 by default)", (*monitor).polls},
}

// timeHelp explains the time parameters, in the index.
const timeHelp = "at, before and since take a poll key (an integer), an interval meaning that long ago " +
	"([nD][nH][nM][nS], such as 1H30M or 20S) or an RFC 3339 time (after year 1); at and before exclude each other"

func newMux(m *monitor) *http.ServeMux {
	mux := http.NewServeMux()
	for _, e := range endpoints {
		mux.HandleFunc("GET "+e.path, func(w http.ResponseWriter, r *http.Request) {
			q, err := parseQuery(r.URL.Query(), e.params, m.now())
			var v any
			if err == nil {
				v, err = e.serve(m, r, q)
			}
			if err != nil {
				m.writeError(w, err)
				return
			}
			m.writeJSON(w, http.StatusOK, v)
		})
	}
	mux.HandleFunc("GET /{$}", m.index)
	mux.Handle("GET /metrics", m.metrics())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			m.writeJSON(w, http.StatusMethodNotAllowed, errorJSON{Error: "method " + r.Method + " not allowed"})
			return
		}
		m.writeJSON(w, http.StatusNotFound, errorJSON{Error: "no endpoint " + r.URL.Path + " (see /)"})
	})
	return mux
}

func (m *monitor) index(w http.ResponseWriter, _ *http.Request) {
	list := map[string]string{"/metrics": "Prometheus metrics of the runtime"}
	for _, e := range endpoints {
		path := e.path
		if len(e.params) > 0 {
			path += "?" + strings.Join(e.params, "=&") + "="
		}
		list[path] = e.summary
	}
	m.writeJSON(w, http.StatusOK, struct {
		Endpoints map[string]string `json:"endpoints"`
		Times     string            `json:"times"`
	}{list, timeHelp})
}

// metrics serves the gatherer in the Prometheus text format. A metric that cannot be
// gathered (Redis did not answer in time) is left out and logged; the others are served.
func (m *monitor) metrics() http.Handler {
	if m.gatherer == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			m.writeJSON(w, http.StatusNotFound, errorJSON{Error: "this runtime's metrics are registered with a Registerer that " +
				"cannot be gathered: serve them from it, or give the monitor a Gatherer"})
		})
	}
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      printlnLogger{m.logger},
	})
}

// printlnLogger is promhttp's error log over slog.
type printlnLogger struct{ l *slog.Logger }

func (p printlnLogger) Println(v ...any) {
	p.l.Warn("monitor: gathering metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// The endpoints.

func (m *monitor) status(*http.Request, query) (any, error) {
	st := m.rt.StatusInfo()
	out := statusJSON{PollInterval: duration(st.PollInterval), Status: string(st.Status), UUID: st.UUID}
	if st.SinceLastPoll > 0 {
		out.TimeSinceLastPoll = ptr(duration(st.SinceLastPoll))
	}
	if st.Uptime > 0 {
		out.Uptime = ptr(duration(st.Uptime))
	}
	return out, nil
}

func (m *monitor) uuid(*http.Request, query) (any, error) { return m.rt.StatusInfo().UUID, nil }

func (m *monitor) utcnow(*http.Request, query) (any, error) { return timestamp(m.now()), nil }

func (m *monitor) jobs(_ *http.Request, q query) (any, error) {
	return m.rt.ActiveJobIDs(q.values["queue"], q.values["agent"]), nil
}

func (m *monitor) job(r *http.Request, _ query) (any, error) {
	id := r.PathValue("id")
	info, ok := m.rt.JobInfo(id)
	if !ok {
		return nil, notFoundf("job %s has not run in this process since it started, or has been forgotten", id)
	}
	return jobJSON{
		Agent: info.Agent, Call: info.Call, Completed: timestamp(info.Completed), Ending: nonEmpty(info.Ending),
		Failed: info.Failed, ID: info.ID, PollID: info.PollID, Queue: info.Queue,
		QuotaNames: nonNil(info.QuotaNames), Reassigned: info.Reassigned, Result: nonEmpty(info.Result),
		Started: timestamp(info.Started), Worker: info.Worker,
	}, nil
}

func (m *monitor) jobstats(_ *http.Request, q query) (any, error) {
	since, before, err := m.period(q)
	if err != nil {
		return nil, err
	}
	s := m.rt.Statistics(since, before, q.values["queue"], q.values["agent"])
	return statsJSON{
		Failed:             s.Failed,
		LongestActive:      run(s.LongestActive),
		LongestFailed:      run(s.LongestFailed),
		LongestSuccessful:  run(s.LongestSuccessful),
		ShortestActive:     run(s.ShortestActive),
		ShortestFailed:     run(s.ShortestFailed),
		ShortestSuccessful: run(s.ShortestSuccessful),
		Started:            s.Started,
		StatisticsEnd:      timestamp(s.End),
		StatisticsStart:    timestamp(s.Start),
		Successful:         s.Successful,
		Unknown:            s.Unknown,
	}, nil
}

func (m *monitor) poll(_ *http.Request, q query) (any, error) {
	var p runtime.PollInfo
	var ok bool
	switch {
	case q.at != nil && q.at.isKey:
		p, ok = m.rt.PollInfo(q.at.key)
	case q.before != nil && q.before.isKey:
		p, ok = m.rt.PollInfo(q.before.key - 1)
	default:
		_, before, err := m.period(q)
		if err != nil {
			return nil, err
		}
		if polls := m.rt.Polls(time.Time{}, before, 1); len(polls) == 1 {
			p, ok = polls[0], true
		}
	}
	if !ok {
		return nil, notFoundf("no poll remembered there")
	}
	return pollOf(p), nil
}

func (m *monitor) polls(_ *http.Request, q query) (any, error) {
	since, before, err := m.period(q)
	if err != nil {
		return nil, err
	}
	count := DefaultPollCount
	if c, ok := q.values["count"]; ok {
		if count, err = strconv.Atoi(c); err != nil || count < 1 {
			return nil, badRequestf("count %q is not a positive integer", c)
		}
	}
	polls := m.rt.Polls(since, before, count)
	out := make([]pollJSON, len(polls))
	for i, p := range polls {
		out[i] = pollOf(p)
	}
	return out, nil
}

// period resolves since and at or before to the bounds of Polls and Statistics: since is
// inclusive, before exclusive, and at includes what happened at that poll or time.
func (m *monitor) period(q query) (since, before time.Time, err error) {
	if q.since != nil {
		if since, err = m.resolve(q.since, "since"); err != nil {
			return
		}
	}
	switch {
	case q.at != nil:
		if before, err = m.resolve(q.at, "at"); err == nil {
			before = before.Add(time.Nanosecond)
		}
	case q.before != nil:
		before, err = m.resolve(q.before, "before")
	}
	return
}

// resolve turns a time parameter into a time: a poll key into the time of that poll.
func (m *monitor) resolve(t *timeParam, name string) (time.Time, error) {
	if !t.isKey {
		return t.time, nil
	}
	p, ok := m.rt.PollInfo(t.key)
	if !ok {
		return time.Time{}, badRequestf("%s: poll %d is not remembered", name, t.key)
	}
	return p.Time, nil
}

// Parameters.

// query is an endpoint's parsed query string.
type query struct {
	values            map[string]string
	at, before, since *timeParam
}

// timeParam is a time parameter: a poll key, or a time.
type timeParam struct {
	isKey bool
	key   int64
	time  time.Time
}

// interval is [nD][nH][nM][nS], case-insensitive (zc.async's intervals); seconds may have a
// fraction.
var interval = regexp.MustCompile(`^(?i)(?:(\d+)D)?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$`)

// parseQuery checks the query string against the parameters an endpoint takes (each at most
// once) and parses the time parameters, intervals going back from now.
func parseQuery(v url.Values, allowed []string, now time.Time) (query, error) {
	q := query{values: map[string]string{}}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // report the same error whatever the map's order
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return q, badRequestf("unknown parameter %q: this endpoint takes none", name)
			}
			return q, badRequestf("unknown parameter %q (this endpoint takes %s)", name, strings.Join(allowed, ", "))
		}
		if len(v[name]) > 1 {
			return q, badRequestf("parameter %q given %d times", name, len(v[name]))
		}
		q.values[name] = v[name][0]
	}
	if _, at := q.values["at"]; at {
		if _, before := q.values["before"]; before {
			return q, badRequestf("at and before exclude each other")
		}
	}
	for name, dst := range map[string]**timeParam{"at": &q.at, "before": &q.before, "since": &q.since} {
		s, ok := q.values[name]
		if !ok {
			continue
		}
		t, err := parseTime(s, now)
		if err != nil {
			return q, badRequestf("%s: %v", name, err)
		}
		*dst = t
	}
	return q, nil
}

// parseTime reads a poll key, an interval ago from now, or an RFC 3339 time.
func parseTime(s string, now time.Time) (*timeParam, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	if key, err := strconv.ParseInt(s, 10, 64); err == nil {
		if key < 1 {
			return nil, fmt.Errorf("poll key %d: poll keys start at 1", key)
		}
		return &timeParam{isKey: true, key: key}, nil
	}
	if m := interval.FindStringSubmatch(s); m != nil {
		var d time.Duration
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
			if m[i+1] != "" {
				n, err := strconv.ParseInt(m[i+1], 10, 64)
				if err != nil || n > int64(100*365*24*time.Hour/unit) {
					return nil, fmt.Errorf("interval %q is too long", s)
				}
				d += time.Duration(n) * unit
			}
		}
		if m[4] != "" {
			secs, err := strconv.ParseFloat(m[4], 64)
			if err != nil || secs > (100*365*24*time.Hour).Seconds() {
				return nil, fmt.Errorf("interval %q is too long", s)
			}
			d += time.Duration(secs * float64(time.Second))
		}
		if d > 100*365*24*time.Hour {
			return nil, fmt.Errorf("interval %q is too long", s)
		}
		return &timeParam{time: now.Add(-d)}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a poll key, an interval ([nD][nH][nM][nS]) nor an RFC 3339 time", s)
	}
	if !t.After(time.Time{}) { // the zero time would mean no bound at all
		return nil, fmt.Errorf("%s is out of range: a time must be after %s", s, time.Time{}.Format(time.RFC3339))
	}
	return &timeParam{time: t}, nil
}

// Errors.

// httpError is an error answered with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

type errorJSON struct {
	Error string `json:"error"`
}

func (m *monitor) writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		status = he.status
	}
	m.writeJSON(w, status, errorJSON{Error: err.Error()})
}

// writeJSON answers v as indented JSON, keys sorted (maps are sorted by encoding/json, and
// the structs below declare their fields in order).
func (m *monitor) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // calls and results are shown as they are
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		m.logger.Error("monitor: encode a response", "error", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error": "the response could not be encoded"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		m.logger.Debug("monitor: write a response", "error", err)
	}
}

// JSON shapes. Fields are declared in the order of their names, so that keys come sorted.

type statusJSON struct {
	PollInterval      duration  `json:"poll interval"`
	Status            string    `json:"status"`
	TimeSinceLastPoll *duration `json:"time since last poll"` // null before the first poll
	Uptime            *duration `json:"uptime"`               // null when stopped
	UUID              string    `json:"uuid"`
}

type jobJSON struct {
	Agent      string    `json:"agent"`
	Call       string    `json:"call"`
	Completed  timestamp `json:"completed"` // null while it runs
	Ending     *string   `json:"ending"`    // finished, rescheduled, waiting, interrupted, reassigned, failed; null while it runs
	Failed     bool      `json:"failed"`
	ID         string    `json:"id"`
	PollID     int64     `json:"poll id"`
	Queue      string    `json:"queue"`
	QuotaNames []string  `json:"quota names"`
	Reassigned bool      `json:"reassigned"`
	Result     *string   `json:"result"` // null while it runs
	Started    timestamp `json:"started"`
	Worker     string    `json:"worker"`
}

type statsJSON struct {
	Failed             int       `json:"failed"`
	LongestActive      *runJSON  `json:"longest active"`
	LongestFailed      *runJSON  `json:"longest failed"`
	LongestSuccessful  *runJSON  `json:"longest successful"`
	ShortestActive     *runJSON  `json:"shortest active"`
	ShortestFailed     *runJSON  `json:"shortest failed"`
	ShortestSuccessful *runJSON  `json:"shortest successful"`
	Started            int       `json:"started"`
	StatisticsEnd      timestamp `json:"statistics end"`
	StatisticsStart    timestamp `json:"statistics start"`
	Successful         int       `json:"successful"`
	Unknown            int       `json:"unknown"`
}

// runJSON is a run in statistics: its job and how long it took (or has taken so far).
type runJSON struct {
	Duration duration `json:"duration"`
	Job      string   `json:"job"`
}

func run(d runtime.JobDuration) *runJSON {
	if d.ID == "" {
		return nil
	}
	return &runJSON{Duration: duration(d.Duration), Job: d.ID}
}

type pollJSON struct {
	Key int64 `json:"key"`
	// Results: per queue, null when the dispatcher was not activated there, else per agent.
	Results map[string]map[string]agentJSON `json:"results"`
	Time    timestamp                       `json:"time"`
}

type agentJSON struct {
	ActiveJobs []string `json:"active jobs"`
	Error      *string  `json:"error"` // null when its last claim went well
	Len        *int     `json:"len"`   // null when it could not be read
	NewJobs    []string `json:"new jobs"`
	Size       int      `json:"size"`
}

func pollOf(p runtime.PollInfo) pollJSON {
	out := pollJSON{Key: p.ID, Time: timestamp(p.Time), Results: make(map[string]map[string]agentJSON, len(p.Queues))}
	for qn, q := range p.Queues {
		if q.Unavailable {
			out.Results[qn] = nil
			continue
		}
		agents := make(map[string]agentJSON, len(q.Agents))
		for an, a := range q.Agents {
			aj := agentJSON{ActiveJobs: nonNil(a.ActiveJobs), Error: nonEmpty(a.Error), NewJobs: nonNil(a.NewJobs), Size: a.Size}
			if a.Len >= 0 {
				aj.Len = ptr(a.Len)
			}
			agents[an] = aj
		}
		out.Results[qn] = agents
	}
	return out
}

// duration is a time.Duration as zc.async's monitor showed a timedelta: the non-zero of
// days, hours, minutes (integers) and seconds (with a fraction, to the microsecond, as
// the times); {"seconds": 0} when zero.
type duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d duration) MarshalJSON() ([]byte, error) {
	v := time.Duration(d).Round(time.Microsecond)
	if v < 0 { // a clock stepped back: not worth splitting up
		return json.Marshal(map[string]float64{"seconds": v.Seconds()})
	}
	out := map[string]any{}
	for _, u := range []struct {
		name string
		unit time.Duration
	}{{"days", 24 * time.Hour}, {"hours", time.Hour}, {"minutes", time.Minute}} {
		if n := v / u.unit; n > 0 {
			out[u.name] = int64(n)
			v -= n * u.unit
		}
	}
	if v > 0 || len(out) == 0 {
		out["seconds"] = v.Seconds()
	}
	return json.Marshal(out)
}

// timestamp is a time in UTC, to the microsecond, with a Z; the zero time is null.
type timestamp time.Time

// TimeLayout is how the monitor writes times: RFC 3339 in UTC, to the microsecond.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON implements json.Marshaler.
func (t timestamp) MarshalJSON() ([]byte, error) {
	if time.Time(t).IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(time.Time(t).UTC().Format(TimeLayout))
}

func ptr[T any](v T) *T { return &v }

// nonEmpty is s, or nil (null) when s is empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nonNil is s, or an empty list: the JSON has [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

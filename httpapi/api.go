// Package httpapi is zasync's cluster-wide HTTP API: JSON about every queue, job, dispatcher
// and agent of an installation, and the operator's actions on them. It reads Redis, not one
// process's memory, so any process (or `zasync monitor --redis URL`, which serves no queue)
// answers for the whole installation.
//
// Endpoints, under the prefix it is mounted at:
//
//	GET  /v1/queues                     every queue: counts, paused, dispatchers alive and dead
//	GET  /v1/queues/{queue}             one queue, with its dispatchers and their agents, and its
//	                                    quotas with their holders
//	GET  /v1/queues/{queue}/throughput  its completions and failures per step_ms (default a
//	                                    minute) over the last span_ms (default an hour), from
//	                                    counters
//	POST /v1/queues/{queue}/jobs        put a job; the body: {"handler", "args", "kwargs",
//	                                    "meta", "begin_after" or "begin_in_ms", "begin_by_ms",
//	                                    "run_timeout_ms", "retry" (a policy's name), "priority",
//	                                    "quotas", "failure_level", "unique_key",
//	                                    "unique_states", "unique_completed_ms", "debounce"};
//	                                    the answer: the job ("duplicate": true when it held
//	                                    the unique key already, and nothing was put)
//	POST /v1/queues/{queue}/pause       pause it (no dispatcher claims from it)
//	POST /v1/queues/{queue}/resume      resume it
//	GET  /v1/dispatchers?queue=…        every dispatcher record (alive, dead, stopped), with host,
//	                                    pid, agents and when it was last buried
//	GET  /v1/dispatchers/events?queue=… their history, newest first: activated, stopped,
//	                                    found_dead (by a sibling, with the jobs it handed on)
//	                                    and came_back; limit (default 100, at most 500)
//	GET  /v1/schedules?queue=…          the periodic jobs: spec, call, next and last tick (with
//	                                    its job), the processes declaring them
//	GET  /v1/jobs?state=…               jobs in the states given (repeat state), filtered by
//	                                    queue, callable, agent and uuid (globs), completed_since,
//	                                    completed_before, started_since, started_before (RFC
//	                                    3339), a page at a time: limit (default 50, at most 1000)
//	                                    and cursor
//	GET  /v1/jobs/{queue}/{id}          one job: its call, outcome, earlier attempts, callbacks,
//	                                    annotations, unique key
//	POST /v1/jobs/{queue}/{id}/cancel   cancel it (retry, delete: the same)
//	POST /v1/bulk/{action}              cancel, retry or delete what a query selects; the body:
//	                                    {"states": [...], "queue", "callable", "agent", "uuid",
//	                                    "limit", "dry_run"}
//	POST /v1/purge                      delete completed jobs by age; the body: {"state",
//	                                    "older_than_ms", "queue", "limit", "dry_run"}
//
// Keys are snake_case; times are RFC 3339 in UTC; every duration is a number of milliseconds
// in a key ending in _ms. An error is {"error": {"code": …, "message": …}} with a code among
// invalid (400), unauthorized (401), forbidden (403), not_found (404), bad_status and
// conflict (409), unavailable (503) and internal (500).
//
// Reads are open to whoever reaches the handler. Actions (the POST endpoints) are refused to
// cross-site browser requests, and need the token given with WithToken in an
// "Authorization: Bearer" header; with no token they are served to loopback clients only.
package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/zasync/zasync/runtime"
)

// Option changes what New serves.
type Option func(*options)

type options struct {
	token  string
	logger *slog.Logger
}

// WithToken makes the actions require token, sent as "Authorization: Bearer <token>", from
// any client; without it, only loopback clients may act. An empty token changes nothing.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithLogger sets where the handler logs what goes wrong while it answers. Default: nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// New returns the API over rt as an http.Handler, to mount under any prefix (with
// http.StripPrefix). rt need not serve any queue.
func New(rt *runtime.Runtime, opts ...Option) http.Handler {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	a := &api{rt: rt, token: o.token, logger: o.logger, cop: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/queues", a.queues)
	mux.HandleFunc("GET /v1/queues/{queue}", a.queue)
	mux.HandleFunc("GET /v1/queues/{queue}/throughput", a.throughput)
	mux.HandleFunc("POST /v1/queues/{queue}/jobs", a.act(a.put))
	mux.HandleFunc("POST /v1/queues/{queue}/{action}", a.act(a.pause))
	mux.HandleFunc("GET /v1/dispatchers", a.dispatchers)
	mux.HandleFunc("GET /v1/dispatchers/events", a.dispatcherEvents)
	mux.HandleFunc("GET /v1/schedules", a.schedules)
	mux.HandleFunc("GET /v1/jobs", a.jobs)
	mux.HandleFunc("GET /v1/jobs/{queue}/{id}", a.job)
	mux.HandleFunc("POST /v1/jobs/{queue}/{id}/{action}", a.act(a.jobAction))
	mux.HandleFunc("POST /v1/bulk/{action}", a.act(a.bulk))
	mux.HandleFunc("POST /v1/purge", a.act(a.purge))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// api answers the endpoints.
type api struct {
	rt     *runtime.Runtime
	token  string
	logger *slog.Logger
	cop    *http.CrossOriginProtection
}

// apiError is an error answered as JSON with its HTTP status and code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// badRequest is an invalid input error.
func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid", msg: fmt.Sprintf(format, args...)}
}

// fail answers err as JSON: an *apiError as it says, a runtime error by its sentinel.
func (a *api) fail(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, code: "internal", msg: err.Error()}
		for _, m := range []struct {
			err    error
			status int
			code   string
		}{
			{runtime.ErrInvalid, http.StatusBadRequest, "invalid"},
			{runtime.ErrUnknownQuota, http.StatusBadRequest, "invalid"},
			{runtime.ErrNotFound, http.StatusNotFound, "not_found"},
			{runtime.ErrBadStatus, http.StatusConflict, "bad_status"},
			{runtime.ErrConflict, http.StatusConflict, "conflict"},
			{runtime.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
		} {
			if errors.Is(err, m.err) {
				e.status, e.code = m.status, m.code
				break
			}
		}
		if e.code == "internal" {
			a.logger.Error("the API could not answer", "error", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": e.code, "message": e.msg}})
}

// reply answers v as JSON with status 200.
func (a *api) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		a.logger.Warn("the API could not write its answer", "error", err)
	}
}

// act wraps an action: it refuses cross-site browser requests, and requests without the
// token (or, with no token, from clients that are not on loopback).
func (a *api) act(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.cop.Check(r); err != nil {
			a.fail(w, &apiError{status: http.StatusForbidden, code: "forbidden", msg: "cross-site request refused: " + err.Error()})
			return
		}
		if err := a.allowed(r); err != nil {
			a.fail(w, err)
			return
		}
		v, err := h(w, r)
		if err != nil {
			a.fail(w, err)
			return
		}
		a.reply(w, v)
	}
}

// allowed checks who may act.
func (a *api) allowed(r *http.Request) error {
	if a.token == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return &apiError{status: http.StatusForbidden, code: "forbidden",
				msg: "actions are served to loopback clients only when no token is set (--monitor-token)"}
		}
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "this action needs the API's token: Authorization: Bearer <token>"}
	}
	return nil
}

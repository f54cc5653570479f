// Package monitor is zasync's HTTP monitor: what a process's dispatcher sees, as JSON (the
// tools of zc.async's `async` monitor command), and the runtime's Prometheus metrics.
//
// Endpoints (GET):
//
//	/                 the endpoints and how to write times
//	/status           the dispatcher's status, poll interval, time since its last poll, uptime, UUID
//	/uuid             the dispatcher's UUID
//	/utcnow           the current time
//	/jobs             the jobs running in this process now (?queue= &agent=)
//	/job/{id}         what this process knows of its newest run of a job
//	/jobstats         statistics of the runs claimed in a period (?at=|before= &since= &queue= &agent=)
//	/poll             one poll, the newest by default (?at=|before=)
//	/polls            recent polls, newest first, 3 by default (?at=|before= &since= &count=)
//	/metrics          Prometheus metrics (text exposition format)
//
// The JSON is indented by four spaces with its keys sorted. Durations are objects with the
// non-zero of "days", "hours", "minutes" and "seconds" ({"seconds": 0} when zero); times are
// RFC 3339 in UTC with a Z, to the microsecond; a job is its id. The at, before and since
// parameters take a poll key (an integer, the "key" of a poll), an interval meaning that long
// ago ([nD][nH][nM][nS], such as 1H30M or 20S), or an RFC 3339 time. A bad parameter gives
// 400 and an unknown job or poll 404, each with {"error": "…"}.
//
// The monitor reads the process's memory, as zc.async's dispatcher introspection does: it
// answers about the dispatcher of this process only, and nothing from Redis except the
// metrics' gauges. It has no
// authentication: Listen serves it on loopback addresses only, unless told otherwise.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zasync/zasync/runtime"
)

// Option changes what New serves.
type Option func(*options)

type options struct {
	gatherer prometheus.Gatherer
	logger   *slog.Logger
}

// WithGatherer serves g at /metrics in place of the runtime's own metrics (Runtime.Metrics):
// for a program that registers zasync's metrics in a registry of its own, or wants more
// metrics on the same page (prometheus.Gatherers{rt.Metrics(), prometheus.DefaultGatherer}).
func WithGatherer(g prometheus.Gatherer) Option {
	return func(o *options) { o.gatherer = g }
}

// WithLogger sets where the handler logs what goes wrong while it answers (a metric that
// could not be gathered, a response that could not be written). Default: nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// New returns the monitor of rt as an http.Handler, to serve with Listen or mount in a
// program's own server (under a prefix with http.StripPrefix). It may be made before rt
// starts: a runtime not started reports STOPPED and no runs.
func New(rt *runtime.Runtime, opts ...Option) http.Handler {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.gatherer == nil {
		o.gatherer = rt.Metrics()
	}
	return newMux(&monitor{rt: rt, logger: o.logger, gatherer: o.gatherer, now: time.Now})
}

// ErrNotLoopback reports a monitor address that is not a loopback one: the monitor has no
// authentication, so Listen refuses to serve it to the network unless AllowRemote is given.
var ErrNotLoopback = errors.New("monitor: not a loopback address")

// ListenOption changes how Listen serves.
type ListenOption func(*listenOptions)

type listenOptions struct {
	allowRemote bool
	logger      *slog.Logger
}

// AllowRemote lets Listen serve on an address that is not a loopback one (":8080", a public
// interface). Anyone who can reach it sees the jobs' calls and results: put it behind
// something that authenticates.
func AllowRemote() ListenOption {
	return func(o *listenOptions) { o.allowRemote = true }
}

// ListenLogger sets where the HTTP server logs its own errors (a connection that fails).
// Default: nowhere.
func ListenLogger(l *slog.Logger) ListenOption {
	return func(o *listenOptions) { o.logger = l }
}

// ShutdownTimeout is how long a stopping Server waits for the requests it is answering.
const ShutdownTimeout = 5 * time.Second

// readHeaderTimeout bounds how long a client may take to send its request's headers.
const readHeaderTimeout = 10 * time.Second

// Server is a monitor listening on an address. It stops when the context given to Listen
// ends or when Close is called.
type Server struct {
	addr net.Addr
	http *http.Server
	stop chan struct{} // closed by Close
	done chan struct{} // closed once the server has stopped; err is set before
	err  error
	once sync.Once
}

// Listen listens on addr (host:port; port 0 picks a free one) and serves h there until ctx
// ends or Close is called; it returns once it listens, so that Addr can report the port it
// got. An addr whose host is not a loopback address (127.0.0.1, ::1, localhost, but also an
// empty host, which means every interface) gives an error wrapping ErrNotLoopback, unless
// AllowRemote is given.
func Listen(ctx context.Context, addr string, h http.Handler, opts ...ListenOption) (*Server, error) {
	o := listenOptions{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("monitor: listen on %s: %w", addr, err)
	}
	// Judged on the address actually bound: a host name can resolve anywhere.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !o.allowRemote && (!ok || !tcp.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("%w: %q binds %s; the monitor has no authentication (listen on 127.0.0.1 or [::1], or allow it explicitly)",
			ErrNotLoopback, addr, ln.Addr())
	}
	s := &Server{
		addr: ln.Addr(),
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(o.logger.Handler(), slog.LevelWarn),
		},
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(ln) }()
	go s.run(ctx, served)
	return s, nil
}

// run waits for the end of ctx or a Close, then shuts the server down: the requests being
// answered get ShutdownTimeout to finish.
func (s *Server) run(ctx context.Context, served <-chan error) {
	defer close(s.done)
	select {
	case <-ctx.Done():
	case <-s.stop:
	case err := <-served: // Serve failed on its own
		s.err = fmt.Errorf("monitor: serve on %s: %w", s.addr, err)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := s.http.Shutdown(sctx); err != nil {
		errs = append(errs, err, s.http.Close())
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.err = fmt.Errorf("monitor: stop serving on %s: %w", s.addr, err)
	}
}

// Addr is the address the server listens on, with the port it got.
func (s *Server) Addr() net.Addr { return s.addr }

// URL is the server's base URL, such as http://127.0.0.1:41234.
func (s *Server) URL() string { return "http://" + s.addr.String() }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the server has stopped and returns what went wrong with it, if anything;
// a stop asked for (ctx ended, Close) is not an error.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Close stops the server, letting the requests being answered finish for up to
// ShutdownTimeout, and returns what Wait returns. It may be called more than once.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stop) })
	return s.Wait()
}

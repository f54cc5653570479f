package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/zasync/zasync/runtime"
)

// putBody is what POST /v1/queues/{queue}/jobs reads: the call, and the put options by the
// names the job's JSON shows them under. Absent keys leave the handler's defaults (Handle's
// options, where this process registered the handler) and then the library's.
type putBody struct {
	Handler      string                     `json:"handler"`
	Args         []json.RawMessage          `json:"args"`
	Kwargs       map[string]json.RawMessage `json:"kwargs"`
	Meta         map[string]string          `json:"meta"`
	BeginAfter   *time.Time                 `json:"begin_after"`
	BeginInMS    *int64                     `json:"begin_in_ms"`
	BeginByMS    *int64                     `json:"begin_by_ms"`
	RunTimeoutMS *int64                     `json:"run_timeout_ms"`
	Retry        string                     `json:"retry"`
	Priority     *int                       `json:"priority"`
	Quotas       []string                   `json:"quotas"`
	FailureLevel string                     `json:"failure_level"`
	uniqueBody                              // unique.go
}

// put puts one job and answers it as GET /v1/jobs/{queue}/{id} would, without its detail.
func (a *api) put(w http.ResponseWriter, r *http.Request) (any, error) {
	var body putBody
	if err := decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Handler == "" {
		return nil, badRequest("put needs a handler")
	}
	opts, err := a.putOptions(&body)
	if err != nil {
		return nil, err
	}
	call := runtime.Call{Handler: body.Handler, Args: body.Args, Kwargs: body.Kwargs, Meta: body.Meta}
	job, err := a.rt.Queue(r.PathValue("queue")).Put(r.Context(), call, opts...)
	if err != nil {
		return nil, err
	}
	s, err := job.Summary(r.Context())
	if err != nil {
		return nil, err
	}
	out := jobOf(s)
	out.Duplicate, out.Debounced = job.Duplicate(), job.Debounced()
	return out, nil
}

// putOptions turns the body's options into put options, refusing what makes no sense before
// anything is written.
func (a *api) putOptions(b *putBody) ([]runtime.PutOption, error) {
	var opts []runtime.PutOption
	dur := func(name string, v *int64) (time.Duration, error) {
		if *v < 0 {
			return 0, badRequest("%s: %d is negative", name, *v)
		}
		if *v > int64(time.Duration(1<<63-1)/time.Millisecond) {
			return 0, badRequest("%s: %d is too large", name, *v)
		}
		return time.Duration(*v) * time.Millisecond, nil
	}
	switch {
	case b.BeginAfter != nil && b.BeginInMS != nil:
		return nil, badRequest("give begin_after or begin_in_ms, not both")
	case b.BeginAfter != nil:
		opts = append(opts, runtime.BeginAfter(*b.BeginAfter))
	case b.BeginInMS != nil:
		d, err := dur("begin_in_ms", b.BeginInMS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.BeginIn(d))
	}
	if b.BeginByMS != nil {
		d, err := dur("begin_by_ms", b.BeginByMS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.BeginBy(d))
	}
	if b.RunTimeoutMS != nil {
		d, err := dur("run_timeout_ms", b.RunTimeoutMS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.Timeout(d))
	}
	if b.Retry != "" {
		p, err := a.rt.RetryPolicyNamed(b.Retry)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.Retry(p))
	}
	if b.Priority != nil {
		opts = append(opts, runtime.Priority(*b.Priority))
	}
	if len(b.Quotas) > 0 {
		opts = append(opts, runtime.Quotas(b.Quotas...))
	}
	if b.FailureLevel != "" {
		l, err := parseLevel(b.FailureLevel)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.FailureLevel(l))
	}
	if u, err := b.uniqueOption(dur); err != nil {
		return nil, err
	} else if u != nil {
		opts = append(opts, u)
	}
	return opts, nil
}

// parseLevel reads a log level as slog writes it (DEBUG, INFO, WARN, ERROR, ERROR+2), or
// CRITICAL.
func parseLevel(s string) (slog.Level, error) {
	if strings.EqualFold(s, "CRITICAL") {
		return runtime.LevelCritical, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, badRequest("failure_level %q: want DEBUG, INFO, WARN, ERROR or CRITICAL", s)
	}
	return l, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zasync/zasync/runtime"
)

// The query commands read the jobs stored in an existing Redis, as zc.async's asyncdb monitor
// command does: count, jobs, jobstats, job, traceback, nextpending, lastcompleted, uuids and
// status. They never start an embedded Redis (it would be empty) and never write. States are
// words (zasync count pending active), filters are flags, and flags may come before or after
// the words.

// queryHelp explains states, filters and windows after the flags of count, jobs and jobstats.
const queryHelp = `
States (at least one; at most one of completed, succeeded, failed):
  pending    waiting in a queue, due or scheduled (listed in claim order, queues merged by begin_after)
  assigned   claimed by an agent, not started          (held jobs: listed by start time,
  active     running, or waiting on an inner job        not started last)
  callbacks  result stored, callbacks running
  completed  done (succeeded or failed), from the agents' completed histories (newest first)
  succeeded  completed with a result
  failed     completed with a failure

Filters:
  --callable, --queue and --agent take globs: * ? [a-z] (a handler name is matched whole;
  zasync's own jobs are zasync.*). For pending jobs --agent and --uuid select what the named
  agents' filters would accept, which only the process running them can tell: from this
  command, naming an activated agent for pending jobs is an error.
  --requested-start, --start, --end and --callbacks-completed take a WINDOW on begin_after,
  the start, the result and the completion: sinceWHEN, beforeWHEN or sinceWHEN,beforeWHEN,
  where WHEN is a duration meaning that long ago (90s, 5m, 1h30m, 2d) or an RFC 3339 time
  after 0001-01-01T00:00:00Z (2026-11-22T15:04:05Z). since is inclusive, before exclusive:
  --start since1h,before5m selects the jobs that started between an hour and five minutes ago.
`

// queryEnv is what every query command shares: where Redis is, the key prefix, JSON output.
type queryEnv struct {
	redis  *redisFlags
	prefix *string
	json   *bool
}

// queryFlagSet returns a flag set with --redis, --prefix and --json, whose --help also
// prints extra.
func queryFlagSet(name, synopsis, extra string, stderr io.Writer) (*flagSet, *queryEnv) {
	fs := flags(name, synopsis, stderr)
	env := &queryEnv{
		redis:  addRedisFlags(fs, redisURLHelp+" (required: queries read an existing Redis)"),
		prefix: fs.String("prefix", runtime.DefaultPrefix, "key prefix in Redis"),
		json:   fs.Bool("json", false, "print JSON instead of text"),
	}
	if extra != "" {
		base := fs.usage
		fs.usage = func() { base(); fmt.Fprint(stderr, extra) }
	}
	return fs, env
}

// open connects to the Redis a query reads and returns a runtime over it (it serves nothing)
// and how to close both.
func (e *queryEnv) open(ctx context.Context, stderr io.Writer) (*runtime.Runtime, func(), error) {
	conn, err := connectExisting(ctx, e.redis, stderr)
	if err != nil {
		return nil, nil, err
	}
	rt, err := runtime.New(runtime.Config{Redis: conn.client, Prefix: *e.prefix})
	if err != nil {
		conn.close()
		if errors.Is(err, runtime.ErrInvalid) {
			return nil, nil, usagef("%v", err)
		}
		return nil, nil, err
	}
	return rt, func() { rt.Close(); conn.close() }, nil
}

// queryErr turns bad input found by a query (ErrInvalid) into a usage error.
func queryErr(err error) error {
	if errors.Is(err, runtime.ErrInvalid) {
		return usagef("%v", err)
	}
	return err
}

// parseWords parses args into fs, flags anywhere among the words, and returns the words
// ("--" ends the flags). Errors are usage errors; --help prints the usage and gives
// flag.ErrHelp.
func parseWords(fs *flagSet, args []string) ([]string, error) {
	var words []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			fs.usage()
			return nil, flag.ErrHelp
		case err != nil:
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return words, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(words, rest...), nil
		}
		words, args = append(words, rest[0]), rest[1:]
	}
}

// filterFlags are the filters of a query.
type filterFlags struct {
	callable, queue, agent, uuid string
	windows                      [4]windowFlag // requested start, start, end, callbacks completed
	limit                        int
}

// addFilters registers the filter flags; withLimit adds --limit.
func addFilters(fs *flagSet, withLimit bool) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.callable, "callable", "", "only jobs whose handler name matches this glob")
	fs.StringVar(&f.queue, "queue", "", "only jobs of the queues whose name matches this glob")
	fs.StringVar(&f.agent, "agent", "", "only jobs of the agents whose name matches this glob")
	fs.StringVar(&f.uuid, "uuid", "", "only jobs of this dispatcher's agents (a UUID, or THIS: $"+runtime.UUIDEnv+" or ./uuid.txt)")
	for i, w := range []struct{ name, what string }{
		{"requested-start", "begin_after"},
		{"start", "start"},
		{"end", "result (end of the handler's work)"},
		{"callbacks-completed", "completion (callbacks done)"},
	} {
		f.windows[i].name = w.name
		fs.Var(&f.windows[i], w.name, "only jobs whose "+w.what+" is in this WINDOW: sinceWHEN, beforeWHEN or sinceWHEN,beforeWHEN")
	}
	if withLimit {
		fs.IntVar(&f.limit, "limit", 0, "at most this many jobs (0: no limit; zc.async's count:)")
	}
	return f
}

// query builds the runtime query of states (words) and the filters.
func (f *filterFlags) query(words []string) (runtime.Query, error) {
	q := runtime.Query{Callable: f.callable, Queue: f.queue, Agent: f.agent, UUID: f.uuid, Limit: f.limit,
		RequestedStart: f.windows[0].w, Start: f.windows[1].w, End: f.windows[2].w, CallbacksCompleted: f.windows[3].w}
	if f.limit < 0 {
		return q, usagef("--limit must not be negative")
	}
	for _, w := range words {
		st, err := runtime.ParseState(w)
		if err != nil {
			return q, usagef("%v", err)
		}
		q.States = append(q.States, st)
	}
	return q, nil
}

// windowFlag is a flag holding a time window, read as sinceWHEN, beforeWHEN or both.
type windowFlag struct {
	name string
	w    runtime.Window
}

func (f *windowFlag) String() string { return "" }

func (f *windowFlag) Set(s string) error {
	w, err := parseWindow(s, time.Now())
	if err != nil {
		return err
	}
	f.w = w
	return nil
}

// parseWindow reads sinceWHEN, beforeWHEN or sinceWHEN,beforeWHEN (either order), WHEN being
// a duration ago or an RFC 3339 time.
func parseWindow(s string, now time.Time) (runtime.Window, error) {
	var w runtime.Window
	const want = "want sinceWHEN, beforeWHEN or sinceWHEN,beforeWHEN, WHEN a duration ago (5m, 2d) or an RFC 3339 time"
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		var at *time.Time
		switch {
		case strings.HasPrefix(part, "since") && w.Since.IsZero():
			at, part = &w.Since, part[len("since"):]
		case strings.HasPrefix(part, "before") && w.Before.IsZero():
			at, part = &w.Before, part[len("before"):]
		default:
			return w, fmt.Errorf("%q: %s", s, want)
		}
		t, err := parseWhen(part, now)
		if err != nil {
			return w, fmt.Errorf("%q: %v: %s", s, err, want)
		}
		*at = t
	}
	if !w.Since.IsZero() && !w.Before.IsZero() && !w.Since.Before(w.Before) {
		return w, fmt.Errorf("%q: since must be earlier than before", s)
	}
	return w, nil
}

var daysPrefix = regexp.MustCompile(`^(\d+)d`)

// parseWhen reads a duration ago (Go's syntax, plus d for days) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no time given")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		// The zero time means "no bound" to the runtime: a user who names it, or an earlier
		// time, surely means something else.
		if !t.After(time.Time{}) {
			return time.Time{}, fmt.Errorf("%s is out of range: WHEN must be after %s", s, time.Time{}.Format(time.RFC3339))
		}
		return t, nil
	}
	var ago time.Duration
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 100000 {
			return time.Time{}, fmt.Errorf("%q is too many days", m[1])
		}
		ago, rest = time.Duration(days)*24*time.Hour, s[len(m[0]):]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("%q is neither a duration nor an RFC 3339 time", s)
		}
		ago += d
	}
	return now.Add(-ago), nil
}

// emitJSON prints v as indented JSON.
func emitJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runCount prints how many jobs are in the states given, filtered.
func runCount(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("count", "STATE... [filters]", queryHelp, stderr)
	f := addFilters(fs, true)
	q, err := parseQuery(fs, f, args)
	if err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		n, err := rt.Count(ctx, q)
		if err != nil {
			return queryErr(err)
		}
		if *env.json {
			return emitJSON(stdout, n)
		}
		_, err = fmt.Fprintln(stdout, n)
		return err
	})
}

// parseQuery parses args into a query with states.
func parseQuery(fs *flagSet, f *filterFlags, args []string) (runtime.Query, error) {
	words, err := parseWords(fs, args)
	if err != nil {
		return runtime.Query{}, err
	}
	return f.query(words)
}

// withRuntime opens the Redis env names and runs fn with a runtime over it.
func withRuntime(env *queryEnv, stderr io.Writer, fn func(ctx context.Context, rt *runtime.Runtime) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rt, closeAll, err := env.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	return fn(ctx, rt)
}

// runJobs lists the jobs in the states given.
func runJobs(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("jobs", "STATE... [filters] [--display default|repr|details]", queryHelp, stderr)
	f := addFilters(fs, true)
	display := fs.String("display", "default", "default: job ids (queue/id); repr: id, status and call; details: every field")
	q, err := parseQuery(fs, f, args)
	if err != nil {
		return err
	}
	if *display != "default" && *display != "repr" && *display != "details" {
		return usagef("--display %q: want default, repr or details", *display)
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		jobs, err := rt.Jobs(ctx, q)
		if err != nil {
			return queryErr(err)
		}
		if *env.json {
			switch *display {
			case "default":
				ids := make([]string, len(jobs))
				for i, j := range jobs {
					ids[i] = j.Job.String()
				}
				return emitJSON(stdout, ids)
			case "repr":
				type repr struct {
					Job    string `json:"job"`
					Status string `json:"status"`
					Call   string `json:"call"`
				}
				out := make([]repr, len(jobs))
				for i, j := range jobs {
					out[i] = repr{j.Job.String(), j.Status.String(), j.Call}
				}
				return emitJSON(stdout, out)
			}
			return emitJSON(stdout, jobs)
		}
		for i, j := range jobs {
			switch *display {
			case "default":
				fmt.Fprintln(stdout, j.Job)
			case "repr":
				fmt.Fprintf(stdout, "%s  %-9s  %s\n", j.Job, j.Status, j.Call)
			default:
				if i > 0 {
					fmt.Fprintln(stdout)
				}
				printSummary(stdout, j)
			}
		}
		return nil
	})
}

// runJobStats prints the counts per state and the longest and shortest waits and runs.
func runJobStats(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("jobstats", "STATE... [filters]", queryHelp, stderr)
	f := addFilters(fs, true)
	q, err := parseQuery(fs, f, args)
	if err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		st, err := rt.JobStats(ctx, q)
		if err != nil {
			return queryErr(err)
		}
		if *env.json {
			return emitJSON(stdout, st)
		}
		for _, c := range []struct {
			name string
			n    int
		}{{"pending", st.Pending}, {"assigned", st.Assigned}, {"active", st.Active}, {"callbacks", st.Callbacks},
			{"succeeded", st.Succeeded}, {"failed", st.Failed}} {
			fmt.Fprintf(stdout, "%-16s %d\n", c.name, c.n)
		}
		for _, t := range []struct {
			name string
			t    *runtime.JobTiming
		}{{"longest wait", st.LongestWait}, {"shortest wait", st.ShortestWait},
			{"longest active", st.LongestActive}, {"shortest active", st.ShortestActive}} {
			if t.t == nil {
				fmt.Fprintf(stdout, "%-16s -\n", t.name)
			} else {
				fmt.Fprintf(stdout, "%-16s %s  %s\n", t.name, t.t.Duration, t.t.Job)
			}
		}
		return nil
	})
}

// jobArg reads the one job id a command takes.
func jobArg(rt *runtime.Runtime, words []string, cmd string) (*runtime.Job, error) {
	if len(words) != 1 {
		return nil, usagef("%s needs exactly one JOB id (queue/id, as put prints it)", cmd)
	}
	job, err := rt.JobByRef(words[0])
	if err != nil {
		return nil, usagef("job id %q: want queue/id, as put prints it", words[0])
	}
	return job, nil
}

// unknownJob says that a job id names no job.
func unknownJob(job *runtime.Job) error {
	return fmt.Errorf("no job %s (it never existed, or it completed longer ago than the retention period)", job)
}

// runJob describes one job.
func runJob(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("job", "JOB   (JOB as put prints it: queue/id)", "", stderr)
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) != 1 {
		return usagef("job needs exactly one JOB id (queue/id, as put prints it)")
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		job, err := jobArg(rt, words, "job")
		if err != nil {
			return err
		}
		s, err := job.Summary(ctx)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			return unknownJob(job)
		case err != nil:
			return err
		case *env.json:
			return emitJSON(stdout, s)
		}
		printSummary(stdout, s)
		return nil
	})
}

// runTraceback prints the failure of a job.
func runTraceback(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("traceback", "JOB [--detail brief|default|verbose]", "", stderr)
	detail := fs.String("detail", "default", "brief: the error and one file:line:function line per frame; default: the error and its stack; verbose: the job's run, then the default")
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) != 1 {
		return usagef("traceback needs exactly one JOB id (queue/id, as put prints it)")
	}
	d, err := runtime.ParseTracebackDetail(*detail)
	if err != nil {
		return usagef("--detail: %v", err)
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		job, err := jobArg(rt, words, "traceback")
		if err != nil {
			return err
		}
		tb, ok, err := job.Traceback(ctx, d)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			return unknownJob(job)
		case err != nil:
			return queryErr(err)
		case !ok:
			st, err := job.Status(ctx)
			if err != nil {
				return err
			}
			return fmt.Errorf("job %s has no failure (it is %s)", job, describeStatus(st))
		case *env.json:
			return emitJSON(stdout, map[string]string{"job": job.String(), "detail": string(d), "traceback": tb})
		}
		_, err = fmt.Fprint(stdout, tb)
		return err
	})
}

// describeStatus says where a job without a failure stands.
func describeStatus(st runtime.Status) string {
	if st == runtime.StatusCompleted || st == runtime.StatusCallbacks {
		return st.String() + " and succeeded"
	}
	return st.String()
}

// runNextPending describes the next pending job to run.
func runNextPending(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("nextpending", "[filters]", queryHelp, stderr)
	f := addFilters(fs, false)
	q, err := parseQuery(fs, f, args)
	if err != nil {
		return err
	}
	if len(q.States) > 0 {
		return usagef("nextpending takes no state (it looks at pending jobs)")
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		s, ok, err := rt.NextPending(ctx, q)
		if err != nil {
			return queryErr(err)
		}
		return printFirst(stdout, *env.json, s, ok, "no pending job")
	})
}

// runLastCompleted describes the job that completed last.
func runLastCompleted(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("lastcompleted", "[completed|succeeded|failed] [filters]", queryHelp, stderr)
	f := addFilters(fs, false)
	q, err := parseQuery(fs, f, args)
	if err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		s, ok, err := rt.LastCompleted(ctx, q)
		if err != nil {
			return queryErr(err)
		}
		return printFirst(stdout, *env.json, s, ok, "no completed job")
	})
}

// printFirst prints the job nextpending or lastcompleted found, or none (JSON null).
func printFirst(w io.Writer, asJSON bool, s runtime.JobSummary, ok bool, none string) error {
	switch {
	case asJSON && !ok:
		return emitJSON(w, nil)
	case asJSON:
		return emitJSON(w, s)
	case !ok:
		_, err := fmt.Fprintln(w, none)
		return err
	}
	printSummary(w, s)
	return nil
}

// runUUIDs lists the activated dispatchers' UUIDs.
func runUUIDs(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("uuids", "[--queue GLOB]", "", stderr)
	queue := fs.String("queue", "", "only dispatchers activated in the queues whose name matches this glob")
	if err := parse(fs, args); err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		ids, err := rt.UUIDs(ctx, *queue)
		if err != nil {
			return queryErr(err)
		}
		if *env.json {
			return emitJSON(stdout, ids)
		}
		for _, id := range ids {
			fmt.Fprintln(stdout, id)
		}
		return nil
	})
}

// runStatus describes the queues, their activated dispatchers and their agents.
func runStatus(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("status", "[--queue GLOB] [--uuid UUID]", "", stderr)
	queue := fs.String("queue", "", "only the queues whose name matches this glob")
	uuid := fs.String("uuid", "", "only this dispatcher (a UUID, or THIS: $"+runtime.UUIDEnv+" or ./uuid.txt)")
	if err := parse(fs, args); err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		queues, err := rt.QueueStatus(ctx, *queue, *uuid)
		if err != nil {
			return queryErr(err)
		}
		if *env.json {
			return emitJSON(stdout, queues)
		}
		if len(queues) == 0 {
			fmt.Fprintln(stdout, "no queue")
		}
		for _, q := range queues {
			paused := ""
			if q.Stats.Paused {
				paused = " (PAUSED: no dispatcher claims from it)"
			}
			fmt.Fprintf(stdout, "queue %s: %d pending (%d due, %d scheduled, %d put back), %d held by agents%s\n",
				q.Queue, q.Pending, q.Stats.Due, q.Stats.Scheduled, q.Stats.PutBack, q.Stats.Held, paused)
			if len(q.Dispatchers) == 0 {
				fmt.Fprintln(stdout, "  no activated dispatcher")
			}
			for _, d := range q.Dispatchers {
				health := "alive"
				if d.Dead {
					health = "DEAD"
				}
				ping := "never pinged"
				if !d.LastPing.IsZero() {
					ping = "last ping " + d.SincePing.Round(time.Millisecond).String() + " ago"
				}
				where := ""
				if d.Host != "" || d.PID != 0 {
					where = fmt.Sprintf(" on %s pid %d", orUnknown(d.Host), d.PID)
				}
				fmt.Fprintf(stdout, "  dispatcher %s%s: %s, activated %s, %s (ping interval %s, dead after %s)\n",
					d.UUID, where, health, d.Activated.Format(time.RFC3339), ping, d.PingInterval, d.PingDeathInterval)
				for _, a := range d.Agents {
					fmt.Fprintf(stdout, "    agent %s: %d of %d slots\n", a.Name, a.Len, a.Size)
				}
			}
		}
		return nil
	})
}

// orUnknown returns s, or "unknown host" when it is empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown host"
	}
	return s
}

// printSummary prints a job's summary, one field per line.
func printSummary(w io.Writer, s runtime.JobSummary) {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339Nano)
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	args, _ := json.Marshal(s.Args)
	kwargs, _ := json.Marshal(s.Kwargs)
	if s.Args == nil {
		args = []byte("[]")
	}
	if s.Kwargs == nil {
		kwargs = []byte("{}")
	}
	active := "-"
	if !s.ActiveStart.IsZero() {
		active = s.Active.String()
	}
	result := "-"
	switch {
	case s.Failed:
		result = strings.TrimRight(strings.ReplaceAll(s.Traceback, "\n", "\n    "), " \n")
	case s.Result != nil:
		result = string(s.Result)
	}
	callbacks := make([]string, len(s.Callbacks))
	for i, c := range s.Callbacks {
		callbacks[i] = c.String()
	}
	for _, f := range [][2]string{
		{"job", s.Job.String()},
		{"call", s.Call},
		{"args", string(args)},
		{"kwargs", string(kwargs)},
		{"status", s.Status.String()},
		{"failed", strconv.FormatBool(s.Failed)},
		{"result", result},
		{"begin after", when(s.BeginAfter)},
		{"active start", when(s.ActiveStart)},
		{"active end", when(s.ActiveEnd)},
		{"initial callbacks end", when(s.InitialCallbacksEnd)},
		{"wait", s.Wait.String()},
		{"active", active},
		{"quota names", orDash(strings.Join(s.QuotaNames, ", "))},
		{"agent", orDash(s.Agent)},
		{"dispatcher", orDash(s.Dispatcher)},
		{"queue", s.Queue},
		{"callbacks", orDash(strings.Join(callbacks, ", "))},
	} {
		fmt.Fprintf(w, "%-22s %s\n", f[0]+":", f[1])
	}
	for _, a := range s.EarlierAttempts {
		how := "succeeded"
		switch {
		case a.Interrupted:
			how = "interrupted (its dispatcher stopped or was found dead)"
		case a.Failure != nil:
			how = "failed: " + oneLine(a.Failure.Error())
		}
		fmt.Fprintf(w, "%-22s attempt %d by %s, started %s, completed %s, %s\n", "earlier attempt:",
			a.Attempt, orDash(a.Owner), when(a.Start), when(a.Completed), how)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zasync/zasync/runtime"
)

// everyHelp is the help of serve's --every flag.
const everyHelp = "a periodic job NAME=SCHEDULE=[QUEUE:]HANDLER(ARGS) (repeatable): SCHEDULE a cron expression " +
	"(5 fields, or 6 with seconds first; CRON_TZ=Europe/Paris prefix for a zone, else UTC) or @every DURATION; " +
	"QUEUE default " + runtime.DefaultQueue + "; ARGS JSON values separated by commas, " +
	`e.g. --every 'nightly=0 2 * * *=reports:build("daily", 7)'. ` +
	"Every process declaring it may tick; each tick is put once"

// parseEvery reads one --every: NAME=SCHEDULE=[QUEUE:]HANDLER(ARGS). The call is what comes
// after the last '=' before the opening parenthesis, since a schedule may hold '='
// (CRON_TZ=) and arguments may hold anything.
func parseEvery(v string) (name, schedule, queue string, call runtime.Call, err error) {
	bad := func(why string) error {
		return usagef("--every %q: %s (want NAME=SCHEDULE=[QUEUE:]HANDLER(ARGS))", v, why)
	}
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return "", "", "", call, bad("no NAME=")
	}
	open := strings.IndexByte(rest, '(')
	if open < 0 || !strings.HasSuffix(rest, ")") {
		return "", "", "", call, bad("no HANDLER(ARGS)")
	}
	eq := strings.LastIndexByte(rest[:open], '=')
	if eq <= 0 {
		return "", "", "", call, bad("no SCHEDULE=")
	}
	schedule, target := strings.TrimSpace(rest[:eq]), strings.TrimSpace(rest[eq+1:open])
	queue = runtime.DefaultQueue
	if q, h, ok := strings.Cut(target, ":"); ok {
		queue, target = q, h
	}
	if target == "" {
		return "", "", "", call, bad("no HANDLER")
	}
	var args []json.RawMessage
	if body := strings.TrimSpace(rest[open+1 : len(rest)-1]); body != "" {
		if err := json.Unmarshal([]byte("["+body+"]"), &args); err != nil {
			return "", "", "", call, bad("ARGS are not JSON values separated by commas: quote strings as \"text\"")
		}
	}
	strs := make([]string, len(args))
	for i, a := range args {
		strs[i] = string(a)
	}
	call, err = parseCall(target, strs, nil)
	return name, schedule, queue, call, err
}

// everyDecl is one --every, parsed.
type everyDecl struct {
	flag, name, schedule, queue string
	call                        runtime.Call
}

// parseEveryFlags reads serve's --every and --every-missed before anything is started.
func parseEveryFlags(every []string, missed string) ([]everyDecl, runtime.Missed, error) {
	m := runtime.Missed(missed)
	if m != runtime.MissedRunOnce && m != runtime.MissedSkip {
		return nil, "", usagef("--every-missed %q: want %s or %s", missed, runtime.MissedRunOnce, runtime.MissedSkip)
	}
	decls := make([]everyDecl, len(every))
	for i, v := range every {
		d := &decls[i]
		d.flag = v
		var err error
		if d.name, d.schedule, d.queue, d.call, err = parseEvery(v); err != nil {
			return nil, "", err
		}
	}
	return decls, m, nil
}

// declareEvery declares serve's --every schedules in rt.
func declareEvery(rt *runtime.Runtime, decls []everyDecl, missed runtime.Missed) error {
	for _, d := range decls {
		if err := rt.Every(d.name, d.schedule, d.call, runtime.EveryQueue(d.queue), runtime.EveryMissed(missed)); err != nil {
			return usagef("--every %q: %v", d.flag, err)
		}
	}
	return nil
}

// scheduleView is a schedule as `zasync schedules --json` prints it.
type scheduleView struct {
	Name      string         `json:"name"`
	Queue     string         `json:"queue"`
	Spec      string         `json:"spec"`
	Handler   string         `json:"handler"`
	Call      string         `json:"call,omitempty"`
	Missed    string         `json:"missed"`
	NextTick  *time.Time     `json:"next_tick"`
	LastTick  *time.Time     `json:"last_tick"`
	LastJob   string         `json:"last_job,omitempty"`
	Declarers []declarerView `json:"declarers"`
	Corrupt   string         `json:"corrupt,omitempty"`
}

type declarerView struct {
	ID    string    `json:"id"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	Spec  string    `json:"spec"`
	Until time.Time `json:"until"`
}

func viewSchedule(s runtime.Schedule) scheduleView {
	v := scheduleView{Name: s.Name, Queue: s.Queue, Spec: s.Spec, Handler: s.Handler, Missed: string(s.Missed),
		LastJob: s.LastJob, Declarers: []declarerView{}}
	if s.Call != nil {
		v.Call = s.Call.String()
	}
	if !s.NextTick.IsZero() {
		v.NextTick = &s.NextTick
	}
	if !s.LastTick.IsZero() {
		v.LastTick = &s.LastTick
	}
	for _, d := range s.Declarers {
		v.Declarers = append(v.Declarers, declarerView{ID: d.ID, Host: d.Host, PID: d.PID, Spec: d.Spec, Until: d.Until})
	}
	if s.Corrupt != nil {
		v.Corrupt = s.Corrupt.Error()
	}
	return v
}

// runSchedules lists the periodic jobs of every queue.
func runSchedules(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("schedules", "[--queue NAME]", "", stderr)
	queue := fs.String("queue", "", "only the schedules of this queue")
	if err := parse(fs, args); err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		all, err := rt.Schedules(ctx)
		if err != nil {
			return queryErr(err)
		}
		views := []scheduleView{}
		for _, s := range all {
			if *queue == "" || s.Queue == *queue {
				views = append(views, viewSchedule(s))
			}
		}
		if *env.json {
			return emitJSON(stdout, views)
		}
		printSchedules(stdout, views)
		return nil
	})
}

// printSchedules prints schedules as text, a few lines each.
func printSchedules(w io.Writer, views []scheduleView) {
	if len(views) == 0 {
		fmt.Fprintln(w, "no schedule")
	}
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, v := range views {
		fmt.Fprintf(w, "schedule %s in queue %s: %s, %s (missed ticks: %s)\n", v.Name, v.Queue, v.Spec, v.Call, v.Missed)
		next := when(v.NextTick)
		if v.NextTick == nil {
			next = "- (no process declares it: it does not tick)"
		}
		last := when(v.LastTick)
		if v.LastJob != "" {
			last += " (job " + v.Queue + "/" + v.LastJob + ")"
		}
		fmt.Fprintf(w, "  next tick %s\n  last tick %s\n", next, last)
		for _, d := range v.Declarers {
			where := ""
			if d.Host != "" || d.PID != 0 {
				where = fmt.Sprintf(" on %s pid %d", orUnknown(d.Host), d.PID)
			}
			differs := ""
			if d.Spec != v.Spec {
				differs = " as " + d.Spec
			}
			fmt.Fprintf(w, "  declared by %s%s%s, until %s\n", d.ID, where, differs, d.Until.Format(time.RFC3339))
		}
		if v.Corrupt != "" {
			fmt.Fprintf(w, "  CORRUPT: %s\n", v.Corrupt)
		}
	}
}

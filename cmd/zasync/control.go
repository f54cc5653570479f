package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/zasync/zasync/runtime"
)

// actionResult is what an action did to one job, as --json prints it.
type actionResult struct {
	Job      string   `json:"job"`
	OK       bool     `json:"ok"`
	Was      string   `json:"was,omitempty"`      // the job's status before the action
	Parts    []string `json:"parts,omitempty"`    // the jobs acted on with it (a composite's parts, callbacks)
	Attempts int      `json:"attempts,omitempty"` // retry: the earlier runs the job keeps
	Error    string   `json:"error,omitempty"`
}

// jobArgs reads every JOB word before anything is done: one malformed id changes nothing.
func jobArgs(rt *runtime.Runtime, words []string, cmd string) ([]*runtime.Job, error) {
	if len(words) == 0 {
		return nil, usagef("%s needs at least one JOB id (queue/id, as put prints it)", cmd)
	}
	jobs := make([]*runtime.Job, len(words))
	for i, w := range words {
		j, err := rt.JobByRef(w)
		if err != nil {
			return nil, usagef("job id %q: want queue/id, as put prints it", w)
		}
		jobs[i] = j
	}
	return jobs, nil
}

// runCancel cancels jobs wherever they are: waiting, scheduled or running in any process.
func runCancel(args []string, stdout, stderr io.Writer) error {
	return jobAction("cancel", "cancelled", "pending, assigned or active", args, stdout, stderr, (*runtime.Runtime).CancelMatching, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
		rep, err := j.Cancel(ctx)
		if rep != nil {
			r.Was = rep.Was.String()
			r.Parts = refStrings(rep.Parts)
		}
		return err
	})
}

// runRetry puts failed (or cancelled) completed jobs back to run again.
func runRetry(args []string, stdout, stderr io.Writer) error {
	return jobAction("retry", "put back to run again", "failed", args, stdout, stderr, (*runtime.Runtime).RetryMatching, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
		rep, err := j.Retry(ctx)
		if rep != nil {
			r.Was, r.Attempts = runtime.StatusCompleted.String(), rep.Attempts
		}
		return err
	})
}

// runDelete deletes jobs nothing runs, with their callbacks and parts.
func runDelete(args []string, stdout, stderr io.Writer) error {
	return jobAction("delete", "deleted", "pending, completed, succeeded or failed", args, stdout, stderr, (*runtime.Runtime).DeleteMatching, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
		rep, err := j.Delete(ctx)
		if rep != nil {
			r.Was = rep.Was.String()
			r.Parts = refStrings(rep.Parts)
		}
		return err
	})
}

// refStrings returns refs as put prints them.
func refStrings(refs []runtime.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

// bulkFunc is a runtime's bulk form of an action.
type bulkFunc func(rt *runtime.Runtime, ctx context.Context, q runtime.Query, opts ...runtime.BulkOption) (runtime.BulkReport, error)

// jobAction runs one action on each JOB word, after checking them all: one line per job
// (or a JSON list), exit status 1 when the action failed for any. With --query the words
// are states and the filters select the jobs, acted on by bulk (--dry-run: listed only).
func jobAction(cmd, done, states string, args []string, stdout, stderr io.Writer, bulk bulkFunc, do func(context.Context, *runtime.Job, *actionResult) error) error {
	fs, env := queryFlagSet(cmd, "JOB...  |  --query STATE... [filters] [--dry-run]   (JOB as put prints it: queue/id)",
		"\nWith --query, the jobs in the STATEs given ("+states+") that the filters select,\n"+
			"at most "+strconv.Itoa(runtime.MaxBulk)+" a call, each in a transaction of its own."+queryHelp, stderr)
	query := fs.Bool("query", false, "act on the jobs a query selects: the words are states, the filters select")
	dry := fs.Bool("dry-run", false, "with --query: list the jobs the action would act on, and change nothing")
	f := addFilters(fs, true)
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if !*query {
		var set []string
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name != "redis" && fl.Name != "prefix" && fl.Name != "json" && !strings.HasPrefix(fl.Name, "tls-") {
				set = append(set, "--"+fl.Name)
			}
		})
		if len(set) > 0 {
			return usagef("%s needs --query", strings.Join(set, ", "))
		}
	}
	if *query {
		q, err := f.query(words)
		if err != nil {
			return err
		}
		return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
			var opts []runtime.BulkOption
			if *dry {
				opts = append(opts, runtime.DryRun())
			}
			r, err := bulk(rt, ctx, q, opts...)
			if errors.Is(err, runtime.ErrInvalid) {
				return usagef("%v", err)
			}
			return printBulk(stdout, *env.json, cmd, done, *dry, r, err)
		})
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		jobs, err := jobArgs(rt, words, cmd)
		if err != nil {
			return err
		}
		results := make([]actionResult, len(jobs))
		failed := 0
		for i, j := range jobs {
			results[i] = actionResult{Job: j.String()}
			err := do(ctx, j, &results[i])
			switch {
			case err == nil:
				results[i].OK = true
			case errors.Is(err, runtime.ErrNotFound) && results[i].Was == "":
				results[i].Error = unknownJob(j).Error()
			default:
				results[i].Error = oneLine(err.Error())
			}
			if !results[i].OK {
				failed++
			}
		}
		if *env.json {
			if err := emitJSON(stdout, results); err != nil {
				return err
			}
		} else {
			for _, r := range results {
				switch {
				case !r.OK:
					fmt.Fprintf(stdout, "%s: not %s: %s\n", r.Job, done, r.Error)
				case r.Attempts > 0:
					fmt.Fprintf(stdout, "%s: %s (%d earlier attempts kept)\n", r.Job, done, r.Attempts)
				case len(r.Parts) > 0:
					fmt.Fprintf(stdout, "%s: %s (was %s), with %d parts\n", r.Job, done, r.Was, len(r.Parts))
				default:
					fmt.Fprintf(stdout, "%s: %s (was %s)\n", r.Job, done, r.Was)
				}
			}
		}
		if failed > 0 {
			return errSilent
		}
		return nil
	})
}

// bulkResult is a bulk action's report as --json prints it.
type bulkResult struct {
	Matched int      `json:"matched"`
	Done    int      `json:"done"`
	Refused int      `json:"refused"`
	More    bool     `json:"more"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Jobs    []string `json:"jobs,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// printBulk prints what a bulk action did (err: why it stopped early), and returns the
// command's error.
func printBulk(w io.Writer, asJSON bool, cmd, done string, dry bool, r runtime.BulkReport, err error) error {
	if asJSON {
		out := bulkResult{Matched: r.Matched, Done: r.Done, Refused: r.Refused, More: r.More, DryRun: dry, Jobs: refStrings(r.Jobs)}
		if err != nil {
			out.Error = oneLine(err.Error())
		}
		if e := emitJSON(w, out); e != nil {
			return e
		}
		if err != nil {
			return errSilent
		}
		return nil
	}
	if err != nil {
		return err
	}
	more := ""
	if r.More {
		more = "; more match: run it again"
	}
	if dry {
		for _, j := range r.Jobs {
			fmt.Fprintln(w, j)
		}
		fmt.Fprintf(w, "%s would act on %d jobs (dry run: nothing changed%s)\n", cmd, r.Matched, more)
		return nil
	}
	fmt.Fprintf(w, "%s %d of %d jobs matched (%d changed meanwhile and were left as they are%s)\n", done, r.Done, r.Matched, r.Refused, more)
	return nil
}

// runPurge deletes completed jobs older than an age, before their retention would.
func runPurge(args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet("purge", "STATE --older-than DURATION [--queue GLOB] [--limit N] [--dry-run]   (STATE: completed, succeeded or failed)", "", stderr)
	older := fs.Duration("older-than", -1, "only jobs that completed longer ago than this (e.g. 24h; 0: every one)")
	queue := fs.String("queue", "", "only the queues whose name matches this glob")
	limit := fs.Int("limit", 0, "at most this many jobs (0: "+strconv.Itoa(runtime.MaxPurge)+")")
	dry := fs.Bool("dry-run", false, "list the jobs purge would delete, and change nothing")
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) != 1 {
		return usagef("purge needs exactly one STATE: completed, succeeded or failed")
	}
	if *older < 0 {
		return usagef("purge needs --older-than DURATION (0 for every completed job)")
	}
	st, err := runtime.ParseState(words[0])
	if err != nil {
		return usagef("%v", err)
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		var opts []runtime.BulkOption
		if *dry {
			opts = append(opts, runtime.DryRun())
		}
		r, err := rt.Purge(ctx, st, *queue, *older, *limit, opts...)
		if errors.Is(err, runtime.ErrInvalid) {
			return usagef("%v", err)
		}
		return printBulk(stdout, *env.json, "purge", "purged", *dry, r, err)
	})
}

// runPause pauses queues: no dispatcher claims from them until resume.
func runPause(args []string, stdout, stderr io.Writer) error {
	return pauseOrResume("pause", true, args, stdout, stderr)
}

// runResume resumes paused queues.
func runResume(args []string, stdout, stderr io.Writer) error {
	return pauseOrResume("resume", false, args, stdout, stderr)
}

// pauseResult is what pause or resume did to one queue, as --json prints it.
type pauseResult struct {
	Queue   string `json:"queue"`
	Paused  bool   `json:"paused"`
	Changed bool   `json:"changed"`
}

func pauseOrResume(cmd string, pause bool, args []string, stdout, stderr io.Writer) error {
	fs, env := queryFlagSet(cmd, "QUEUE...", "", stderr)
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usagef("%s needs at least one QUEUE", cmd)
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		for _, q := range words { // every name is checked before any queue changes
			if err := rt.CheckQueue(ctx, q); err != nil {
				return queryErr(fmt.Errorf("queue %s: %w", q, err))
			}
		}
		var results []pauseResult
		for _, q := range words {
			var changed bool
			var err error
			if pause {
				changed, err = rt.PauseQueue(ctx, q)
			} else {
				changed, err = rt.ResumeQueue(ctx, q)
			}
			if err != nil {
				return queryErr(err)
			}
			results = append(results, pauseResult{Queue: q, Paused: pause, Changed: changed})
		}
		if *env.json {
			return emitJSON(stdout, results)
		}
		for _, r := range results {
			state := "resumed"
			if pause {
				state = "paused"
			}
			if !r.Changed {
				state = "already " + state
				if !pause {
					state = "not paused"
				}
			}
			fmt.Fprintf(stdout, "queue %s: %s\n", r.Queue, state)
		}
		return nil
	})
}

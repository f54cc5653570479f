package main

import (
	"context"
	"errors"
	"fmt"
	"io"

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
	return jobAction("cancel", "cancelled", args, stdout, stderr, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
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
	return jobAction("retry", "put back to run again", args, stdout, stderr, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
		rep, err := j.Retry(ctx)
		if rep != nil {
			r.Was, r.Attempts = runtime.StatusCompleted.String(), rep.Attempts
		}
		return err
	})
}

// runDelete deletes jobs nothing runs, with their callbacks and parts.
func runDelete(args []string, stdout, stderr io.Writer) error {
	return jobAction("delete", "deleted", args, stdout, stderr, func(ctx context.Context, j *runtime.Job, r *actionResult) error {
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

// jobAction runs one action on each JOB word, after checking them all: one line per job
// (or a JSON list), exit status 1 when the action failed for any.
func jobAction(cmd, done string, args []string, stdout, stderr io.Writer, do func(context.Context, *runtime.Job, *actionResult) error) error {
	fs, env := queryFlagSet(cmd, "JOB...   (JOB as put prints it: queue/id)", "", stderr)
	words, err := parseWords(fs, args)
	if err != nil {
		return err
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

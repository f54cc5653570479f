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
	Job   string   `json:"job"`
	OK    bool     `json:"ok"`
	Was   string   `json:"was,omitempty"`   // the job's status before the action
	Parts []string `json:"parts,omitempty"` // a composite's jobs cancelled with it
	Error string   `json:"error,omitempty"`
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
	fs, env := queryFlagSet("cancel", "JOB...   (JOB as put prints it: queue/id)", "", stderr)
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	return withRuntime(env, stderr, func(ctx context.Context, rt *runtime.Runtime) error {
		jobs, err := jobArgs(rt, words, "cancel")
		if err != nil {
			return err
		}
		results := make([]actionResult, len(jobs))
		failed := 0
		for i, j := range jobs {
			results[i] = actionResult{Job: j.String()}
			r, err := j.Cancel(ctx)
			if r != nil {
				results[i].Was = r.Was.String()
				for _, p := range r.Parts {
					results[i].Parts = append(results[i].Parts, p.String())
				}
			}
			switch {
			case err == nil:
				results[i].OK = true
			case errors.Is(err, runtime.ErrNotFound) && r == nil:
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
				case r.OK && len(r.Parts) > 0:
					fmt.Fprintf(stdout, "%s: cancelled (was %s), with %d parts\n", r.Job, r.Was, len(r.Parts))
				case r.OK:
					fmt.Fprintf(stdout, "%s: cancelled (was %s)\n", r.Job, r.Was)
				default:
					fmt.Fprintf(stdout, "%s: not cancelled: %s\n", r.Job, r.Error)
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/zasync/zasync/runtime"
)

// builtins are the handlers `serve --builtin` and `demo` register: enough to try zasync from
// the command line, and to drill its recovery.
var builtins = []struct {
	name, usage string
	fn          runtime.HandlerFunc
}{
	{"echo", "echo ARG…: returns its one argument, or the list of its arguments", echo},
	{"sleep", "sleep SECONDS: waits that long (stops early when the job is interrupted) and returns SECONDS", sleep},
	{"fail", "fail [MESSAGE]: fails with MESSAGE", fail},
	{"sum", "sum NUMBER… (or one list of numbers): returns their sum", sum},
	{"flaky", "flaky N: fails its first N runs, then returns which run succeeded (use with --retry errors)", flaky},
	{"total", "total: as a composite's postprocess, returns the sum of its sub-jobs' numeric results", total},
	{"work", "work SECONDS: sleep, recording each run on the job (annotation run.N) and returning which process ran it: for recovery drills", work},
}

// retryErrors is the retry policy `put --retry errors` names: every process that serves the
// queue must know it, so serve registers it always (not only with --builtin).
var retryErrors runtime.RetryPolicy = retryErrorsPolicy{}

// retryErrorsPolicy retries any handler error three times, half a second apart, and is
// RetryCommonFourTimes otherwise.
type retryErrorsPolicy struct{}

// retryErrorsTimes is how many times retryErrorsPolicy retries a failing handler.
const retryErrorsTimes = 3

func (retryErrorsPolicy) Name() string { return "RetryErrorsThreeTimes" }

func (retryErrorsPolicy) JobError(err error, c runtime.RetryCounts) runtime.Decision {
	if errors.Is(err, runtime.ErrInvalid) {
		return runtime.StopRetrying() // bad arguments fail the same way every time
	}
	c["errors"]++
	if c["errors"] > retryErrorsTimes {
		return runtime.StopRetrying()
	}
	return runtime.RetryAfter(500 * time.Millisecond)
}

func (retryErrorsPolicy) CommitError(err error, c runtime.RetryCounts) runtime.Decision {
	return runtime.RetryCommonFourTimes.CommitError(err, c)
}

func (retryErrorsPolicy) Interrupted(c runtime.RetryCounts) runtime.Decision {
	return runtime.RetryCommonFourTimes.Interrupted(c)
}

// registerBuiltins registers every built-in handler with rt.
func registerBuiltins(rt *runtime.Runtime) error {
	for _, b := range builtins {
		if err := rt.Handle(b.name, b.fn); err != nil {
			return err
		}
	}
	return nil
}

func echo(_ context.Context, c *runtime.Call) (any, error) {
	if len(c.Args) == 1 {
		return c.Args[0], nil
	}
	if c.Args == nil {
		return []json.RawMessage{}, nil
	}
	return c.Args, nil
}

func sleep(ctx context.Context, c *runtime.Call) (any, error) {
	var secs float64
	if err := c.Arg(0, &secs); err != nil {
		return nil, err
	}
	if secs < 0 || math.IsNaN(secs) || secs > 365*24*3600 {
		return nil, fmt.Errorf("%w: sleep: %v seconds", runtime.ErrInvalid, secs)
	}
	t := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return secs, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// errFailed is the failure the fail handler returns when given no message.
var errFailed = errors.New("failed, as asked")

func fail(_ context.Context, c *runtime.Call) (any, error) {
	if len(c.Args) == 0 {
		return nil, errFailed
	}
	var msg string
	if err := c.Arg(0, &msg); err != nil {
		return nil, err
	}
	return nil, errors.New(msg)
}

func sum(_ context.Context, c *runtime.Call) (any, error) {
	nums := make([]json.Number, 0, len(c.Args))
	if len(c.Args) == 1 && len(c.Args[0]) > 0 && c.Args[0][0] == '[' {
		if err := json.Unmarshal(c.Args[0], &nums); err != nil {
			return nil, fmt.Errorf("%w: sum: %v", runtime.ErrInvalid, err)
		}
	} else {
		for i := range c.Args {
			var n json.Number
			if err := c.Arg(i, &n); err != nil {
				return nil, err
			}
			nums = append(nums, n)
		}
	}
	// Integers stay integers while they fit; anything else sums as floats.
	var ints int64
	var floats float64
	integral := true
	for _, n := range nums {
		f, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: sum: %v", runtime.ErrInvalid, err)
		}
		floats += f
		if i, err := n.Int64(); err == nil && integral {
			if (i > 0 && ints > math.MaxInt64-i) || (i < 0 && ints < math.MinInt64-i) {
				integral = false
			}
			ints += i
		} else {
			integral = false
		}
	}
	if integral {
		return ints, nil
	}
	return floats, nil
}

// workRun is what `work` records of each run, and returns.
type workRun struct {
	PID     int   `json:"pid"`
	Attempt int64 `json:"attempt"`
}

func work(ctx context.Context, c *runtime.Call) (any, error) {
	run := workRun{PID: os.Getpid()}
	run.Attempt, _ = runtime.Attempt(ctx)
	if job, ok := runtime.JobFrom(ctx); ok {
		// An annotation per run: runs never overwrite each other's record.
		if err := job.SetAnnotation(ctx, fmt.Sprintf("run.%d", run.Attempt), run); err != nil {
			return nil, err
		}
	}
	if _, err := sleep(ctx, c); err != nil {
		return nil, err
	}
	return run, nil
}

// errFlaky is what flaky fails with.
var errFlaky = errors.New("flaky: failing this run, as asked")

func flaky(ctx context.Context, c *runtime.Call) (any, error) {
	var n int64
	if err := c.Arg(0, &n); err != nil {
		return nil, err
	}
	run, _ := runtime.Attempt(ctx)
	if run <= n {
		return nil, fmt.Errorf("run %d: %w", run, errFlaky)
	}
	return run, nil
}

func total(_ context.Context, c *runtime.Call) (any, error) {
	var sum float64
	for i := range c.Args {
		var sub runtime.SubJob
		if err := c.Arg(i, &sub); err != nil {
			return nil, err
		}
		if sub.Failure != nil {
			return nil, fmt.Errorf("sub-job %s failed: %s", sub.ID, sub.Failure.Error())
		}
		var v float64
		if err := json.Unmarshal(sub.Result, &v); err != nil {
			return nil, fmt.Errorf("%w: total: the result of sub-job %s is not a number: %s", runtime.ErrInvalid, sub.ID, sub.Result)
		}
		sum += v
	}
	return sum, nil
}

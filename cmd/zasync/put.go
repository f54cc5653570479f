package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/zasync/zasync/runtime"
)

// runPut puts one job and prints its id; with --wait it waits for the job to complete and
// prints its result (exit status 1 when it failed).
func runPut(args []string, stdout, stderr io.Writer) error {
	fs := flags("put", "HANDLER [ARG…] [flags]   (each ARG a JSON value: 42, '\"text\"', '[1,2]')", stderr)
	rflags := addRedisFlags(fs, redisURLHelp)
	prefix := fs.String("prefix", runtime.DefaultPrefix, "key prefix in Redis")
	queue := fs.String("queue", runtime.DefaultQueue, "the queue to put the job in")
	var kwargs, quotas listFlag
	fs.Var(&kwargs, "kwarg", "a keyword argument NAME=JSON (repeatable)")
	beginAfter := fs.String("begin-after", "", "do not start before this time: RFC 3339 (2026-11-22T15:04:05Z) or +DURATION from now (+90s)")
	beginBy := fs.Duration("begin-by", 0, "fail with TimeoutError if not started within this long after --begin-after")
	fs.Var(&quotas, "quota", "a quota the job takes a slot of while it runs (repeatable; it must exist)")
	runTimeout := fs.Duration("run-timeout", 0, "bound each run of the handler: a run past it fails with a TimeoutError (0: none)")
	priority := fs.Int("priority", runtime.DefaultPriority, fmt.Sprintf("claim before the due jobs of lower priorities: %d to %d, higher first", runtime.MinPriority, runtime.MaxPriority))
	retry := fs.String("retry", "four", "retry policy: never, four (RetryCommonFourTimes), forever (RetryCommonForever), errors (any error retried 3 times) or backoff:N,BASE,MAX (errors retried N times after BASE, doubling up to MAX, with jitter)")
	wait := fs.Bool("wait", false, "wait for the job to complete and print its result")
	timeout := fs.Duration("timeout", 0, "with --wait, give up waiting after this long (0: no limit)")
	asJSON := fs.Bool("json", false, "print JSON")
	uflags := addUniqueFlags(fs)
	// Flags may come after the handler and its arguments: the flag package stops at the
	// first non-flag, so split them ourselves.
	positional, flagArgs := splitArgs(args)
	if err := parse(fs, flagArgs); err != nil {
		return err
	}
	if len(positional) == 0 {
		return usagef("put needs a HANDLER (see zasync put --help)")
	}
	call, err := parseCall(positional[0], positional[1:], kwargs)
	if err != nil {
		return err
	}
	opts, err := putOptions(*beginAfter, *beginBy, quotas, *retry)
	if err == nil && *runTimeout != 0 {
		if *runTimeout < 0 {
			err = usagef("--run-timeout %s: want a positive duration", *runTimeout)
		}
		opts = append(opts, runtime.Timeout(*runTimeout))
	}
	if err == nil && *priority != runtime.DefaultPriority {
		if *priority < runtime.MinPriority || *priority > runtime.MaxPriority {
			err = usagef("--priority %d: want %d to %d", *priority, runtime.MinPriority, runtime.MaxPriority)
		}
		opts = append(opts, runtime.Priority(*priority))
	}
	if err == nil {
		var u runtime.PutOption
		if u, err = uflags.option(); u != nil {
			opts = append(opts, u)
		}
	}
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := connectExisting(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	rt, err := runtime.New(runtime.Config{Redis: conn.client, Prefix: *prefix, RetryPolicies: []runtime.RetryPolicy{retryErrors}})
	if err != nil {
		return usagef("%v", err)
	}
	defer rt.Close()
	job, err := rt.Queue(*queue).Put(ctx, call, opts...)
	if err != nil {
		if errors.Is(err, runtime.ErrInvalid) || errors.Is(err, runtime.ErrUnknownQuota) {
			return usagef("%v", err)
		}
		return err
	}
	if !*wait {
		if *asJSON {
			out := map[string]any{"job": job.String()}
			if job.Duplicate() {
				out["duplicate"], out["debounced"] = true, job.Debounced()
			}
			return printJSON(stdout, out)
		}
		fmt.Fprintln(stdout, job.String())
		reportDuplicate(stderr, job)
		return nil
	}
	if !*asJSON {
		fmt.Fprintln(stderr, job.String()) // the id, while the result is awaited on stdout
		reportDuplicate(stderr, job)
	}
	return waitAndPrint(ctx, job, *timeout, *asJSON, stdout, stderr)
}

// runWait waits for a job already put and prints its result.
func runWait(args []string, stdout, stderr io.Writer) error {
	fs := flags("wait", "JOB [flags]   (JOB as put prints it: queue/id)", stderr)
	rflags := addRedisFlags(fs, redisURLHelp)
	prefix := fs.String("prefix", runtime.DefaultPrefix, "key prefix in Redis")
	timeout := fs.Duration("timeout", 0, "give up waiting after this long (0: no limit)")
	asJSON := fs.Bool("json", false, "print JSON")
	positional, flagArgs := splitArgs(args)
	if err := parse(fs, flagArgs); err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("wait needs exactly one JOB (queue/id, as put prints it)")
	}
	ctx := context.Background()
	conn, err := connectExisting(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	rt, err := runtime.New(runtime.Config{Redis: conn.client, Prefix: *prefix})
	if err != nil {
		return usagef("%v", err)
	}
	defer rt.Close()
	job, err := rt.JobByRef(positional[0])
	if err != nil {
		return usagef("job %q: want queue/id, as put prints it", positional[0])
	}
	if _, err := job.Info(ctx); errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("unknown job %s (or its record has expired)", job)
	} else if err != nil {
		return err
	}
	return waitAndPrint(ctx, job, *timeout, *asJSON, stdout, stderr)
}

// waitAndPrint waits for job (showing its status on a terminal) and prints its outcome: the
// result's JSON, or the failure on stderr with an error return.
func waitAndPrint(ctx context.Context, job *runtime.Job, timeout time.Duration, asJSON bool, stdout, stderr io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	bar := newProgress(stderr, -1, "waiting for "+job.String())
	stop := make(chan struct{})
	defer close(stop)
	if bar != nil {
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if st, err := job.Status(ctx); err == nil {
						bar.describe(fmt.Sprintf("%s: %s", job, st))
					}
					bar.set(0)
				}
			}
		}()
	}
	out, err := job.Wait(ctx)
	bar.done()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s did not complete within %s", job, timeout)
		}
		return err
	}
	if asJSON {
		res := map[string]any{"job": job.String(), "status": "succeeded", "result": out.Result}
		if out.Failure != nil {
			res = map[string]any{"job": job.String(), "status": "failed", "failure": out.Failure}
		}
		if err := printJSON(stdout, res); err != nil {
			return err
		}
		if out.Failure != nil {
			return errSilent
		}
		return nil
	}
	if out.Failure != nil {
		return fmt.Errorf("%s failed: %s", job, out.Failure.Error())
	}
	fmt.Fprintln(stdout, string(out.Result))
	return nil
}

// errSilent fails a command whose output already says what went wrong.
var errSilent = errors.New("")

// splitArgs separates positional arguments from flags, so that flags may follow them: an
// argument starting with '-' is a flag (with its value when it takes one and has no '='),
// except a lone "-" or a negative number, which are JSON; "--" ends the flags.
func splitArgs(args []string) (positional, flagArgs []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(positional, args[i+1:]...), flagArgs
		case len(a) > 1 && a[0] == '-' && !isNumber(a):
			flagArgs = append(flagArgs, a)
			if !strings.Contains(a, "=") && takesValue(a) && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return positional, flagArgs
}

// boolFlags are the flags of put and wait that take no value.
var boolFlags = map[string]bool{"wait": true, "json": true, "help": true, "h": true, "debounce": true}

func takesValue(flag string) bool { return !boolFlags[strings.TrimLeft(flag, "-")] }

func isNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// parseCall builds a call from a handler name and JSON arguments.
func parseCall(handler string, args, kwargs []string) (runtime.Call, error) {
	raw := make([]any, len(args))
	for i, a := range args {
		if !json.Valid([]byte(a)) {
			return runtime.Call{}, usagef("argument %d (%s) is not JSON: quote strings as '\"text\"'", i+1, a)
		}
		raw[i] = json.RawMessage(a)
	}
	call := runtime.NewCall(handler, raw...)
	for _, kw := range kwargs {
		name, value, ok := strings.Cut(kw, "=")
		if !ok || name == "" {
			return runtime.Call{}, usagef("--kwarg %q: want NAME=JSON", kw)
		}
		if !json.Valid([]byte(value)) {
			return runtime.Call{}, usagef("--kwarg %s: %s is not JSON: quote strings as '\"text\"'", name, value)
		}
		call = call.Kwarg(name, json.RawMessage(value))
	}
	return call, nil
}

// putOptions turns put's scheduling flags into options.
func putOptions(beginAfter string, beginBy time.Duration, quotas []string, retry string) ([]runtime.PutOption, error) {
	var opts []runtime.PutOption
	switch {
	case beginAfter == "":
	case strings.HasPrefix(beginAfter, "+"):
		d, err := time.ParseDuration(beginAfter[1:])
		if err != nil || d < 0 {
			return nil, usagef("--begin-after %q: want +DURATION (+90s, +5m) or an RFC 3339 time", beginAfter)
		}
		opts = append(opts, runtime.BeginIn(d))
	default:
		t, err := time.Parse(time.RFC3339, beginAfter)
		if err != nil {
			return nil, usagef("--begin-after %q: want an RFC 3339 time (2026-11-22T15:04:05Z) or +DURATION", beginAfter)
		}
		opts = append(opts, runtime.BeginAfter(t))
	}
	if beginBy < 0 {
		return nil, usagef("--begin-by must not be negative")
	}
	if beginBy > 0 {
		opts = append(opts, runtime.BeginBy(beginBy))
	}
	if len(quotas) > 0 {
		opts = append(opts, runtime.Quotas(quotas...))
	}
	switch retry {
	case "four":
	case "never":
		opts = append(opts, runtime.Retry(runtime.NeverRetry))
	case "forever":
		opts = append(opts, runtime.Retry(runtime.RetryCommonForever))
	case "errors":
		opts = append(opts, runtime.Retry(retryErrors))
	default:
		p, err := parseBackoff(retry)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.Retry(p))
	}
	return opts, nil
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// parseBackoff reads --retry backoff:N,BASE,MAX.
func parseBackoff(v string) (runtime.RetryPolicy, error) {
	want := usagef("--retry %q: want never, four, forever, errors or backoff:N,BASE,MAX (e.g. backoff:5,1s,1m)", v)
	rest, ok := strings.CutPrefix(v, "backoff:")
	if !ok {
		return nil, want
	}
	parts := strings.Split(rest, ",")
	if len(parts) != 3 {
		return nil, want
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil {
		return nil, want
	}
	base, err1 := time.ParseDuration(parts[1])
	max, err2 := time.ParseDuration(parts[2])
	if err1 != nil || err2 != nil {
		return nil, want
	}
	p, err := runtime.RetryBackoff(n, base, max)
	if err != nil {
		return nil, usagef("--retry %q: %v", v, err)
	}
	return p, nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zasync/zasync/runtime"
)

// The demo's two dispatchers: A in the demo's own process, B in a child `zasync serve`.
const (
	demoQueue = "demo"
	demoA     = "demo-dispatcher-a"
	demoB     = "demo-dispatcher-b"
	// Short intervals so that the tour is quick: B is declared dead one second after its last
	// ping.
	demoPoll  = 100 * time.Millisecond
	demoPing  = 200 * time.Millisecond
	demoDeath = time.Second
)

// runDemo tours zasync on an embedded Redis: two dispatchers, plain, scheduled, failing and
// composite jobs, then a hard crash of one dispatcher in the middle of a job and its recovery
// by the other.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flags("demo", "", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &demo{out: stdout, start: time.Now()}
	err := d.run(ctx)
	if d.stopB != nil {
		d.stopB()
	}
	if d.rt != nil {
		d.rt.Close()
	}
	if d.conn != nil {
		d.conn.close()
	}
	return err
}

type demo struct {
	out   io.Writer
	start time.Time
	conn  *connection
	rt    *runtime.Runtime
	procB *os.Process
	stopB func()
	bLog  *lockedBuffer
	// bKilled: B was killed; A may take the crash step's jobs from then on.
	bKilled atomic.Bool

	jobs, succeeded, failed int
	ranOn                   map[string]int
	recovery                time.Duration
}

// say prints one line of the story, stamped with the time since the demo started.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%5.1fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	conn, err := connect(ctx, &redisFlags{}, io.Discard)
	if err != nil {
		return err
	}
	d.conn = conn
	d.ranOn = map[string]int{}
	d.say("zasync demo: an embedded Redis at %s (in memory; gone when the demo ends)", redactURL(conn.url))

	// Dispatcher A, here; its warnings (a sibling declared dead, jobs recovered) are part of the story.
	rt, err := runtime.New(runtime.Config{
		Redis: conn.client, UUID: demoA, Logger: slog.New(&storyLog{d: d, who: "A"}),
		// Twice B's slots, so that A has room for B's jobs when B dies. Until B is killed, A
		// leaves the crash step's jobs to B, so that B surely runs them when it dies.
		Queues: []runtime.QueueConfig{{Name: demoQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: 8,
			Filter: func(j *runtime.JobRecord) bool { return j.Call.Handler != "work" || d.bKilled.Load() }}}}},
		PollInterval: demoPoll, PingInterval: demoPing, PingDeathInterval: demoDeath, ShutdownGrace: time.Second,
		RetryPolicies: []runtime.RetryPolicy{retryErrors},
	})
	if err != nil {
		return err
	}
	d.rt = rt
	if err := registerBuiltins(rt); err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	if err := d.startB(ctx); err != nil {
		return err
	}
	d.say("two dispatchers serve queue %q: A in this process (pid %d, 8 slots), B in a child process (pid %d, 4 slots)",
		demoQueue, os.Getpid(), d.procB.Pid)

	for _, step := range []func(context.Context) error{d.plain, d.scheduled, d.failing, d.composites, d.crash} {
		if err := step(ctx); err != nil {
			if d.bLog != nil && d.bLog.Len() > 0 {
				fmt.Fprintf(d.out, "dispatcher B's log:\n%s", d.bLog.String())
			}
			return err
		}
	}
	d.summary()
	return nil
}

// startB starts dispatcher B as `zasync serve` on the same Redis and waits until it serves.
func (d *demo) startB(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start dispatcher B: %w", err)
	}
	cmd := exec.Command(self, "serve", "--builtin", "--redis", d.conn.url, "--uuid", demoB, "--queue", demoQueue,
		"--agent", "main:4", "--poll-interval", demoPoll.String(), "--ping-interval", demoPing.String(),
		"--ping-death-interval", demoDeath.String(), "--grace", "1s", "--log-level", "warn")
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dispatcher B: %w", err)
	}
	d.procB = cmd.Process
	d.bLog = &lockedBuffer{}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderrPipe)
		once := sync.Once{}
		for sc.Scan() {
			d.bLog.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "serving") {
				once.Do(func() { close(serving) })
			}
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.stopB = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case <-serving:
		return nil
	case <-exited:
		return fmt.Errorf("dispatcher B exited at start:\n%s", d.bLog.String())
	case <-ctx.Done():
		return fmt.Errorf("dispatcher B did not start: %w", ctx.Err())
	}
}

// put puts call in the demo queue.
func (d *demo) put(ctx context.Context, call runtime.Call, opts ...runtime.PutOption) (*runtime.Job, error) {
	d.jobs++
	return d.rt.Queue(demoQueue).Put(ctx, call, opts...)
}

// wait waits for job and tells where it ran and what it gave.
func (d *demo) wait(ctx context.Context, what string, job *runtime.Job) (*runtime.Outcome, error) {
	out, err := job.Wait(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := job.Info(ctx)
	if err != nil {
		return nil, err
	}
	who := d.name(rec.Owner.Dispatcher)
	d.ranOn[who]++
	if out.Failure != nil {
		d.failed++
		d.say("  %s failed on %s: %s", what, who, out.Failure.Error())
	} else {
		d.succeeded++
		d.say("  %s = %s, run by %s", what, out.Result, who)
	}
	return out, nil
}

func (d *demo) name(uuid string) string {
	switch uuid {
	case demoA:
		return "A"
	case demoB:
		return "B"
	}
	return uuid
}

func (d *demo) plain(ctx context.Context) error {
	d.say("plain jobs: each put publishes a wake-up, so an idle dispatcher starts it within milliseconds")
	calls := []runtime.Call{runtime.NewCall("sum", 1, 2, 3), runtime.NewCall("echo", "hello"),
		runtime.NewCall("sum", 40, 2), runtime.NewCall("echo", "a", 1, true)}
	jobs := make([]*runtime.Job, len(calls))
	for i, c := range calls {
		j, err := d.put(ctx, c)
		if err != nil {
			return err
		}
		jobs[i] = j
	}
	for i, j := range jobs {
		if _, err := d.wait(ctx, calls[i].String(), j); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) scheduled(ctx context.Context) error {
	d.say("a scheduled job: echo(\"later\") put to begin after 1s")
	put := time.Now()
	j, err := d.put(ctx, runtime.NewCall("echo", "later"), runtime.BeginIn(time.Second))
	if err != nil {
		return err
	}
	if _, err := d.wait(ctx, `echo("later")`, j); err != nil {
		return err
	}
	rec, err := j.Info(ctx)
	if err != nil {
		return err
	}
	d.say("  it started %.2fs after it was put", rec.ActiveStart.Sub(put).Seconds())
	return nil
}

func (d *demo) failing(ctx context.Context) error {
	d.say("failing jobs: a failure is stored as the job's result; the retry policy decides what runs again")
	j, err := d.put(ctx, runtime.NewCall("fail", "boom"), runtime.Retry(runtime.NeverRetry))
	if err != nil {
		return err
	}
	if _, err := d.wait(ctx, `fail("boom") with NeverRetry`, j); err != nil {
		return err
	}
	j, err = d.put(ctx, runtime.NewCall("flaky", 2), runtime.Retry(retryErrors))
	if err != nil {
		return err
	}
	out, err := d.wait(ctx, "flaky(2), failing its first 2 runs, with a policy retrying errors 3 times", j)
	if err != nil {
		return err
	}
	if out.Failure == nil {
		d.say("  it failed twice, was retried half a second later each time, and run 3 succeeded")
	}
	return nil
}

func (d *demo) composites(ctx context.Context) error {
	d.say("composites: a serial and a parallel job, each with a postprocess summing its parts")
	serial := runtime.Serial(runtime.NewCall("sum", 1, 2), runtime.NewCall("sleep", 0.2), runtime.NewCall("sum", 3, 4),
		runtime.Postprocess(runtime.NewCall("total")))
	parallel := runtime.Parallel(runtime.NewCall("sum", 10, 1), runtime.NewCall("sum", 20, 2), runtime.NewCall("sum", 30, 3),
		runtime.Postprocess(runtime.NewCall("total")))
	sj, err := d.put(ctx, serial)
	if err != nil {
		return err
	}
	pj, err := d.put(ctx, parallel)
	if err != nil {
		return err
	}
	if _, err := d.wait(ctx, "serial(sum(1,2), sleep(0.2), sum(3,4), postprocess total)", sj); err != nil {
		return err
	}
	if _, err := d.wait(ctx, "parallel(sum(10,1), sum(20,2), sum(30,3), postprocess total)", pj); err != nil {
		return err
	}
	return nil
}

func (d *demo) crash(ctx context.Context) error {
	d.say("a hard crash: B takes 4 jobs of 2 seconds each (work 2), and is killed with SIGKILL in the middle of them")
	jobs := make([]*runtime.Job, 4)
	for i := range jobs {
		j, err := d.put(ctx, runtime.NewCall("work", 2))
		if err != nil {
			return err
		}
		jobs[i] = j
	}
	// Kill B once it runs some of them.
	var onB []*runtime.Job
	for len(onB) == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("no job started on B: %w", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the jobs' records, as an operator would
		for _, j := range jobs {
			rec, err := j.Info(ctx)
			if err != nil {
				return err
			}
			if rec.Status == runtime.StatusActive && rec.Owner.Dispatcher == demoB {
				onB = append(onB, j)
			}
		}
	}
	if err := d.procB.Kill(); err != nil { // SIGKILL: no clean shutdown
		return fmt.Errorf("kill dispatcher B: %w", err)
	}
	d.bKilled.Store(true)
	killed := time.Now()
	d.stopB = nil
	d.say("  killed B (pid %d) while it ran %d of them: no clean shutdown, its jobs stay ACTIVE in Redis", d.procB.Pid, len(onB))
	d.say("  A checks its sibling at every poll: B is dead once its last ping is %s old", demoDeath)
	for _, j := range jobs {
		out, err := j.Wait(ctx)
		if err != nil {
			return err
		}
		rec, err := j.Info(ctx)
		if err != nil {
			return err
		}
		d.ranOn[d.name(rec.Owner.Dispatcher)]++
		if out.Failure != nil {
			d.failed++
			d.say("  %s failed: %s", j, out.Failure.Error())
			continue
		}
		d.succeeded++
		var run workRun
		json.Unmarshal(out.Result, &run)
		if run.Attempt > 1 {
			if at := rec.ActiveStart.Sub(killed); d.recovery == 0 || at < d.recovery {
				d.recovery = at
			}
			d.say("  %s was interrupted on B and completed by %s (pid %d) after %d interruption(s)", j.ID(), d.name(rec.Owner.Dispatcher),
				run.PID, rec.Retry["interruptions"])
		}
	}
	if d.recovery == 0 {
		return errors.New("no job of B's was recovered: B finished them before it was killed; run the demo again")
	}
	d.say("  the first of B's jobs started again on A %.2fs after the kill (bound: death interval + 2 polls = %.1fs)",
		d.recovery.Seconds(), (demoDeath + 2*demoPoll).Seconds())
	return nil
}

func (d *demo) summary() {
	d.say("summary: %d jobs put, %d succeeded, %d failed (as meant to); run by A: %d, by B: %d; nothing lost after the crash",
		d.jobs, d.succeeded, d.failed, d.ranOn["A"], d.ranOn["B"])
	d.say("next: `zasync serve --builtin` runs a dispatcher for real; `zasync put --help` and `zasync help` tell the rest")
}

// storyLog tells, in the demo's story, what a dispatcher logs at WARN and above, except the
// failures the story already tells.
type storyLog struct {
	d   *demo
	who string
}

func (s *storyLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (s *storyLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "traceback") || strings.Contains(r.Message, "failed") || strings.HasPrefix(r.Message, "Retry policy") {
		return nil
	}
	s.d.say("  %s logs: %s", s.who, r.Message)
	return nil
}
func (s *storyLog) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *storyLog) WithGroup(string) slog.Handler      { return s }

// lockedBuffer collects a child's log for printing if something goes wrong.
type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sb.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Len()
}

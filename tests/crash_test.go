package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// Intervals of the crash test's processes.
const (
	crashPoll  = 100 * time.Millisecond
	crashPing  = 100 * time.Millisecond
	crashDeath = time.Second
	// crashSlack is what a loaded machine may add to the recovery bound (death interval plus
	// two polls): timers that fire late, processes that wait for a core. A recovery that
	// misses the bound by more than this is a slower mechanism (a sweep, a second death
	// interval), not a busy machine.
	crashSlack = 300 * time.Millisecond
)

// server is one `zasync serve` process of the crash test.
type server struct {
	uuid   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// buildCommand builds the zasync command into dir, once per test.
func buildCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zasync")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/zasync/zasync/cmd/zasync").CombinedOutput(); err != nil {
		t.Fatalf("build zasync: %v\n%s", err, out)
	}
	return bin
}

// startServer runs `zasync serve` with the built-in handlers against the world's Redis.
func (w *world) startServer(bin, addr, uuid string) *server {
	w.t.Helper()
	dir := w.t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--builtin", "--redis", "redis://"+addr+"/0", "--prefix", w.prefix, "--uuid", uuid,
		"--agent", "main:8", "--poll-interval", crashPoll.String(), "--ping-interval", crashPing.String(),
		"--ping-death-interval", crashDeath.String(), "--grace", "2s")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	s := &server{uuid: uuid, cmd: cmd, log: logf, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	w.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-s.exited
		logf.Close()
	})
	return s
}

// logLines returns the lines of the server's log that contain part.
func (s *server) logLines(t *testing.T, part string) []string {
	t.Helper()
	f, err := os.Open(s.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), part) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// run is what the built-in handler `work` records of each run.
type run struct {
	PID     int   `json:"pid"`
	Attempt int64 `json:"attempt"`
}

// runsOf reads the runs `work` recorded on a job.
func (w *world) runsOf(id string) map[int64]run {
	w.t.Helper()
	ann, err := w.store.Annotations(w.ctx, persistence.Ref{Queue: runtime.DefaultQueue, ID: id})
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int64]run{}
	for name, raw := range ann {
		if !strings.HasPrefix(name, "run.") {
			continue
		}
		var r run
		if err := json.Unmarshal(raw, &r); err != nil {
			w.t.Fatalf("annotation %s of %s: %v", name, id, err)
		}
		out[r.Attempt] = r
	}
	return out
}

// Three `zasync serve` processes on a real Redis run 200 jobs and ten composites; one is
// killed with SIGKILL in the middle, another is stopped (SIGSTOP) for longer than the death
// interval and then continued. Every job completes, with the result of its latest run
// only; every extra run is explained by an interruption; no job is made twice (a second
// postprocess, say); the late commits of the process presumed dead are all refused; and the killed
// process's jobs start elsewhere within the death interval plus two polls.
func TestCrashAcrossProcesses(t *testing.T) {
	addr := os.Getenv("ZASYNC_TEST_REDIS")
	if addr == "" {
		t.Skip("needs a real Redis: set ZASYNC_TEST_REDIS=host:port")
	}
	w := newWorld(t, addr)
	bin := buildCommand(t)
	servers := []*server{
		w.startServer(bin, addr, "crash-1"),
		w.startServer(bin, addr, "crash-2"),
		w.startServer(bin, addr, "crash-3"),
	}
	w.eventually("three dispatchers activated", func() bool {
		all, err := w.store.Dispatchers(w.ctx, runtime.DefaultQueue)
		n := 0
		for _, d := range all {
			if d.IsActivated() {
				n++
			}
		}
		return err == nil && n == 3
	})

	client := w.runtime("crash-client", 1, nil)
	q := client.Queue(runtime.DefaultQueue)
	var jobs, composites []*runtime.Job
	for i := range 200 {
		j, err := q.Put(w.ctx, runtime.NewCall("work", 0.2+float64(i%3)*0.1))
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	for i := range 10 {
		parts := []runtime.Call{runtime.NewCall("work", 0.2), runtime.NewCall("work", 0.3),
			runtime.Postprocess(runtime.NewCall("work", 0.1))}
		call := runtime.Serial(parts...)
		if i%2 == 1 {
			call = runtime.Parallel(parts...)
		}
		j, err := q.Put(w.ctx, call)
		if err != nil {
			t.Fatal(err)
		}
		composites = append(composites, j)
	}

	// Kill crash-1 once it runs jobs.
	victim := servers[0]
	var heldAtKill []string
	w.eventually("crash-1 runs jobs", func() bool {
		held, err := w.store.AgentJobs(w.ctx, runtime.DefaultQueue, persistence.Owner{Dispatcher: victim.uuid, Agent: "main"})
		heldAtKill = held
		return err == nil && len(held) >= 4
	})
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.exited

	// Then stop crash-2 for longer than the death interval: it is presumed dead, its jobs
	// go elsewhere, and when it goes on its late commits must all be refused.
	stopped := servers[1]
	w.eventually("crash-1 declared dead", func() bool {
		d, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, victim.uuid)
		return err == nil && !d.IsActivated()
	})
	var heldAtStop []string
	w.eventually("crash-2 runs jobs", func() bool {
		held, err := w.store.AgentJobs(w.ctx, runtime.DefaultQueue, persistence.Owner{Dispatcher: stopped.uuid, Agent: "main"})
		heldAtStop = held
		return err == nil && len(held) >= 2
	})
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	w.eventually("crash-2 presumed dead", func() bool {
		d, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, stopped.uuid)
		return err == nil && !d.IsActivated()
	})
	time.Sleep(crashDeath / 2) // stopped well past its death: a SIGSTOP is what is tested here, not a synchronisation
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// Everything completes.
	ctx, cancel := context.WithTimeout(w.ctx, 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs)+len(composites))
	for _, j := range slices.Concat(jobs, composites) {
		wg.Go(func() {
			out, err := j.Wait(ctx)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %w", j, err)
			case out.Failure != nil:
				errs <- fmt.Errorf("%s failed: %v", j, out.Failure)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Each job's result is its latest run's, and each extra run is an interruption's.
	check := func(id string) *persistence.Job {
		rec := w.record(id)
		runs := w.runsOf(id)
		var res run
		if err := json.Unmarshal(rec.Result, &res); err != nil {
			t.Fatalf("result of %s: %s: %v", id, rec.Result, err)
		}
		latest, ok := runs[rec.Attempt]
		if res.Attempt != rec.Attempt || !ok || latest.PID != res.PID {
			t.Fatalf("%s: result %+v from attempt %d, record at attempt %d, runs %v: want the latest run's result", id, res, res.Attempt, rec.Attempt, runs)
		}
		if n, interrupted := len(runs), rec.Retry[persistence.CountInterruptions]; n > 1+interrupted {
			t.Fatalf("%s ran %d times with %d interruptions: a run that no interruption explains", id, n, interrupted)
		}
		return rec
	}
	for _, j := range jobs {
		check(j.ID())
	}
	for _, c := range composites {
		subs, post := w.parts(c.ID())
		for _, s := range subs {
			check(s)
		}
		if len(subs) != 2 {
			t.Fatalf("composite %s has sub-jobs %v, want 2", c.ID(), subs)
		}
		p := check(post)
		if p.Status != persistence.StatusCompleted || string(w.record(c.ID()).Result) != string(p.Result) {
			t.Fatalf("composite %s: result %s, its postprocess %s (%s)", c.ID(), w.record(c.ID()).Result, p.Result, p.Status)
		}
	}
	// No job was made twice (a second postprocess, say): every "work" record is one of the
	// jobs put or a part of a composite. SCAN, not KEYS: the Redis is shared with other tests.
	known := map[string]bool{}
	for _, j := range jobs {
		known[j.ID()] = true
	}
	for _, c := range composites {
		subs, post := w.parts(c.ID())
		for _, s := range append(subs, post) {
			known[s] = true
		}
	}
	seen := 0
	iter := w.client.Scan(w.ctx, 0, w.prefix+":*:job:*", 1000).Iterator()
	for iter.Next(w.ctx) {
		key := iter.Val()
		if strings.HasSuffix(key, ":ann") {
			continue
		}
		id := key[strings.LastIndex(key, ":")+1:]
		if rec := w.record(id); rec.Call.Handler == "work" {
			if !known[id] {
				t.Fatalf("work job %s is neither a job put nor a part of a composite", id)
			}
			seen++
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(known) {
		t.Fatalf("%d work jobs stored, want the %d put or made by composites", seen, len(known))
	}

	// Recovery: the first of the killed process's jobs to start again elsewhere.
	var first time.Duration
	for _, id := range heldAtKill {
		rec := w.record(id)
		if rec.Owner.Dispatcher == victim.uuid {
			continue // it had finished before the kill
		}
		if at := rec.ActiveStart.Sub(killed); at > 0 && (first == 0 || at < first) {
			first = at
		}
	}
	bound := crashDeath + 2*crashPoll
	t.Logf("from the SIGKILL to the first reassigned job starting elsewhere: %s (bound %s, %s more allowed on a busy machine)", first, bound, crashSlack)
	if first == 0 || first > bound+crashSlack {
		t.Fatalf("recovery took %s, want at most the death interval plus two polls (%s), give or take %s", first, bound, crashSlack)
	}

	// The process presumed dead found its commits refused.
	refused := stopped.logLines(t, "was reassigned.  Likely cause was that polling was unable to occur")
	critical := stopped.logLines(t, "not activated prior to ping")
	t.Logf("crash-2 held %d jobs when stopped; %d late commits refused; reactivated: %v", len(heldAtStop), len(refused), len(critical) > 0)
	if len(refused) == 0 || len(critical) == 0 {
		t.Fatalf("crash-2, presumed dead: %d reassigned ERRORs, %d CRITICAL reactivations; want both", len(refused), len(critical))
	}
	// Each refused late commit is noted on its job, on crash-2's run, and only there.
	notes := 0
	for id := range known {
		for _, a := range w.record(id).Attempts {
			if a.LateCommit.IsZero() {
				continue
			}
			if !strings.HasPrefix(a.Owner, stopped.uuid+"/") {
				t.Fatalf("%s: a late commit noted on %s's run, which was never presumed dead: %+v", id, a.Owner, a)
			}
			notes++
		}
	}
	t.Logf("late commits noted on the jobs: %d", notes)
	if notes == 0 {
		t.Fatalf("crash-2's refused late commits left no note on any job")
	}

	for _, s := range servers[1:] {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop on SIGTERM", s.uuid)
		}
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM", s.uuid, code)
		}
	}
}

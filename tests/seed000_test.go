package tests

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// Seed 000 (catastrophes revisited): a dispatcher that only looks dead. Its ping death
// interval is shorter than its poll interval, so between two of its polls it reads dead, and
// a second dispatcher polling fast buries it and runs its job too. The first one's next poll
// sees the job gone from its agent (reassigned); when its handler returns, the fenced commit
// is refused with zc.async's ERROR, nothing is retried and the job leaves its active jobs;
// the second run completes the job with 42.
func TestSeed000ReassignedWhileRunning(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var runs = make(chan chan struct{}, 2) // each run waits on its own lock
		lock1, lock2 := make(chan struct{}), make(chan struct{})
		runs <- lock1
		runs <- lock2
		handlers := map[string]runtime.HandlerFunc{
			"wait_for_me": runtime.Func0(func(ctx context.Context) (int, error) {
				lock := <-runs
				<-lock // the lock.acquire() of the seed: never cancelled
				return 42, nil
			}),
		}
		queues := []runtime.QueueConfig{{Name: runtime.DefaultQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: 1}}}}
		logs := &testlog.Recorder{}
		first := w.runtimeWith(runtime.Config{UUID: "seed000-first", Queues: queues, Logger: slog.New(logs),
			PollInterval: 400 * time.Millisecond, PingInterval: 20 * time.Millisecond, PingDeathInterval: 50 * time.Millisecond,
			ShutdownGrace: time.Second}, handlers)
		w.start(first)
		job, err := first.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("wait_for_me"))
		if err != nil {
			t.Fatal(err)
		}
		w.eventually("the job starts in the first dispatcher", func() bool {
			return slices.Equal(first.ActiveJobIDs("", ""), []string{job.ID()})
		})
		if info, _ := first.JobInfo(job.ID()); info.Reassigned {
			t.Fatalf("reassigned before anything happened: %+v", info)
		}

		// The alternate dispatcher, polling really fast, with a sane death interval.
		second := w.runtimeWith(runtime.Config{UUID: "seed000-second", Queues: queues, Logger: slog.New(logs),
			PollInterval: 10 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
			ShutdownGrace: time.Second}, handlers)
		w.start(second)
		secondAgent := persistence.Owner{Dispatcher: "seed000-second", Agent: "main"}
		w.eventually("the job is in the second dispatcher's agent", func() bool {
			held, err := w.store.AgentJobs(w.ctx, runtime.DefaultQueue, secondAgent)
			return err == nil && slices.Contains(held, job.ID())
		})
		if got := first.ActiveJobIDs("", ""); !slices.Equal(got, []string{job.ID()}) {
			t.Fatalf("the first dispatcher's active jobs %v, want the job its handler still runs", got)
		}
		w.eventually("the job runs in the second dispatcher", func() bool {
			return slices.Equal(second.ActiveJobIDs("", ""), []string{job.ID()})
		})
		w.eventually("the first dispatcher's next poll sees the job reassigned", func() bool {
			info, _ := first.JobInfo(job.ID())
			return info.Reassigned
		})

		// Release the first run: its commit is refused.
		close(lock1)
		w.eventually("the first dispatcher has no active job", func() bool { return len(first.ActiveJobIDs("", "")) == 0 })
		r, ok := logs.Find(slog.LevelError, "was reassigned.  Likely cause was that polling was unable to occur as regularly as "+
			"expected, perhaps because of long commit times in the application.")
		if !ok || !strings.Contains(r.Message, job.ID()) {
			t.Fatalf("no reassigned ERROR naming %s (found %v: %q)", job.ID(), ok, r.Message)
		}
		if st, err := job.Status(w.ctx); err != nil || st == runtime.StatusCompleted {
			t.Fatalf("after the refused commit: status %s (%v), want the second run still going", st, err)
		}

		// Release the second run: it completes the job.
		close(lock2)
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d, want 42", n)
		}
		if rec := w.record(job.ID()); rec.Owner.Dispatcher != "seed000-second" {
			t.Fatalf("the job was completed by %s, want the second dispatcher", rec.Owner)
		}
		w.stop(second)
		w.stop(first)
	})
}

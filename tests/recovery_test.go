package tests

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// crashed leaves in the store what a dispatcher killed in the middle of a job leaves: its
// record activated with the given death interval, one ping, and the job it had claimed and
// started, ACTIVE in its agent. Nothing will ever ping for it again.
func (w *world) crashed(uuid string, death time.Duration, job *runtime.Job) {
	w.t.Helper()
	// Its process ran on this host and is gone, as a crashed one is.
	host, _ := os.Hostname()
	cfg := persistence.DispatcherConfig{PingInterval: death / 4, PingDeathInterval: death,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}, Host: host, PID: gonePID(w.t)}
	if err := w.store.Register(w.ctx, runtime.DefaultQueue, uuid, cfg); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.Activate(w.ctx, runtime.DefaultQueue, uuid); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.Ping(w.ctx, runtime.DefaultQueue, uuid); err != nil {
		w.t.Fatal(err)
	}
	got, err := w.store.Claim(w.ctx, persistence.ClaimParams{Queue: runtime.DefaultQueue, Dispatcher: uuid, Agent: "main", Size: 1, Start: true})
	if err != nil || len(got) != 1 || got[0].ID != job.ID() || got[0].Status != persistence.StatusActive {
		w.t.Fatalf("the crashed dispatcher's claim: %v, %v; want %s ACTIVE", got, err, job.ID())
	}
}

// gonePID returns the id of a process of this host that has exited.
func gonePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// Scenario 46: a process restarted after a hard crash, with the same UUID, finds its record
// still alive: it logs the "another process?" ERROR and leaves the queue unavailable in its
// polls until the record is dead; then it cleans the record and takes over, and the
// interrupted job runs again.
func TestScenario46HardCrashSameUUID(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		put := w.runtime("s46-client", 1, nil)
		job, err := put.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		w.crashed("s46", 1500*time.Millisecond, job)

		logs := &testlog.Recorder{}
		rt := w.runtimeWith(runtime.Config{UUID: "s46", Logger: slog.New(logs),
			PollInterval: 50 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingDeathInterval: 10 * time.Second},
			map[string]runtime.HandlerFunc{"work": runtime.Func0(func(context.Context) (int, error) { return 42, nil })})
		w.start(rt)
		defer w.stop(rt)
		w.eventually("the ERROR: another process?", func() bool {
			_, ok := logs.Find(slog.LevelError, "UUID s46 already activated in queue default: another process?")
			return ok
		})
		// The poll is recorded once its activation has failed and logged: wait for the record.
		w.eventually("a poll that finds the queue unavailable while the record lives", func() bool {
			polls := rt.Polls(time.Time{}, time.Time{}, 1)
			return len(polls) == 1 && polls[0].Queues[runtime.DefaultQueue].Unavailable
		})
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d, want 42", n)
		}
		if c := w.record(job.ID()).Retry[persistence.CountInterruptions]; c != 1 {
			t.Fatalf("interruptions %d, want 1", c)
		}
		// Taken over: the record now has this process's intervals.
		if d, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, "s46"); err != nil || d.PingDeathInterval != 10*time.Second || !d.IsActivated() {
			t.Fatalf("record after the takeover: %+v, %v", d, err)
		}
	})
}

// Scenario 47: a hard crash with a live sibling. Once the crashed dispatcher's last ping is
// older than its death interval, the sibling deactivates its record (not activated, dead),
// its job goes back to the head of the queue through a handleInterrupt job, and the sibling
// completes it.
func TestScenario47HardCrashWithSibling(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		logs := &testlog.Recorder{}
		sibling := w.runtimeWith(runtime.Config{UUID: "s47-sibling", Logger: slog.New(logs),
			PollInterval: 50 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingDeathInterval: 10 * time.Second},
			map[string]runtime.HandlerFunc{"work": runtime.Func0(func(context.Context) (int, error) { return 42, nil })})
		// Put before the sibling starts, and have the crashed one claim it.
		job, err := sibling.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		w.crashed("s47-crashed", time.Second, job)
		w.start(sibling)
		defer w.stop(sibling)
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d, want 42", n)
		}
		d, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, "s47-crashed")
		if err != nil || d.IsActivated() || !d.Dead {
			t.Fatalf("the crashed record: %+v, %v; want not activated and dead", d, err)
		}
		rec := w.record(job.ID())
		if rec.Owner.Dispatcher != "s47-sibling" || rec.Retry[persistence.CountInterruptions] != 1 {
			t.Fatalf("job completed by %s after %d interruptions, want the sibling after 1", rec.Owner, rec.Retry[persistence.CountInterruptions])
		}
		// The supervisor logs once the burial is over, which may be after the job it queued ran.
		w.eventually("a WARN saying the sibling deactivated the dead dispatcher", func() bool {
			_, ok := logs.Find(slog.LevelWarn, "deactivated dead dispatcher s47-crashed")
			return ok
		})
	})
}

// Jobs held by an agent whose dispatcher record is gone (removed by hand, say) are found by
// the supervisor's sweep and run elsewhere: no job stays "active with no owner".
func TestSweepRecoversOrphanedJobs(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtimeWith(runtime.Config{UUID: "sweep-live",
			PollInterval: 50 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingDeathInterval: 500 * time.Millisecond},
			map[string]runtime.HandlerFunc{"work": runtime.Func0(func(context.Context) (int, error) { return 42, nil })})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		w.crashed("sweep-gone", time.Hour, job)
		// The record disappears, its agent's jobs stay: the ring no longer sees it.
		if err := w.client.HDel(w.ctx, w.prefix+":{"+runtime.DefaultQueue+"}:dispatchers", "sweep-gone").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, "sweep-gone"); err == nil {
			t.Fatal("the record is still there: the key schema changed; fix this test")
		}
		w.start(rt)
		defer w.stop(rt)
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d, want 42", n)
		}
		held, err := w.store.HeldBy(w.ctx, runtime.DefaultQueue)
		if err != nil || slices.Contains(held, persistence.Owner{Dispatcher: "sweep-gone", Agent: "main"}) {
			t.Fatalf("agents holding jobs: %v, %v; want the orphaned agent emptied", held, err)
		}
	})
}

// A dispatcher stopped for longer than the retention (a process that started with a new UUID
// each time, say) is forgotten by its siblings' supervisors: its record, its ping, its
// agent's name and history go, so that such processes do not grow the store without bound. A
// dispatcher stopped recently is kept.
func TestSupervisorForgetsLongStoppedDispatchers(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		q := runtime.DefaultQueue
		for _, uuid := range []string{"forget-old", "forget-recent"} {
			cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: 4 * time.Second,
				Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
			if err := w.store.Register(w.ctx, q, uuid, cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := w.store.Activate(w.ctx, q, uuid); err != nil {
				t.Fatal(err)
			}
			if _, err := w.store.Ping(w.ctx, q, uuid); err != nil {
				t.Fatal(err)
			}
			if _, err := w.store.Deactivate(w.ctx, q, uuid); err != nil {
				t.Fatal(err)
			}
		}
		// The old one last pinged eight days ago, past the default retention of seven.
		old := time.Now().Add(-8 * 24 * time.Hour).UnixMicro()
		if err := w.client.Set(w.ctx, w.prefix+":{"+q+"}:ping:forget-old", old, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if d, err := w.store.Dispatcher(w.ctx, q, "forget-old"); err != nil || d.LastPing.UnixMicro() != old {
			t.Fatalf("old record: %+v, %v; the key schema changed: fix this test", d, err)
		}
		rt := w.runtimeWith(runtime.Config{UUID: "forget-live", PollInterval: 50 * time.Millisecond}, nil)
		w.start(rt)
		defer w.stop(rt)
		w.eventually("the long-stopped dispatcher forgotten", func() bool {
			_, err := w.store.Dispatcher(w.ctx, q, "forget-old")
			return errors.Is(err, persistence.ErrNotFound)
		})
		if _, err := w.store.Dispatcher(w.ctx, q, "forget-recent"); err != nil {
			t.Fatalf("the recently stopped dispatcher: %v, want its record kept", err)
		}
	})
}

package runtime

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Introspection through the public API: a runtime not started reads STOPPED and empty; once
// started it runs, describes a job it ran and a job it runs; stopped, it reads STOPPED again.
func TestIntrospection(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	rt := newRuntime(t, Config{
		UUID:         "d-" + t.Name(),
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 3}}}},
		PollInterval: 50 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	rt.Handle("add", Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }))
	rt.Handle("block", Func0(func(context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	}))

	if st := rt.StatusInfo(); st.Status != DispatcherStopped || st.PollInterval != 50*time.Millisecond {
		t.Fatalf("not started: %+v", st)
	}
	if _, ok := rt.JobInfo("x"); ok || rt.ActiveJobIDs("", "") == nil || len(rt.Polls(time.Time{}, time.Time{}, 0)) != 0 ||
		rt.Statistics(time.Time{}, time.Time{}, "", "") != (Statistics{}) {
		t.Fatal("a runtime not started answers with something")
	}
	if _, ok := rt.PollInfo(1); ok {
		t.Fatal("a runtime not started has a poll")
	}

	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(release)
			rt.Stop(context.Background())
		}
	})
	j := mustPut(t, rt, NewCall("add", 40, 2))
	if n := waitInt(t, j); n != 42 {
		t.Fatalf("result %d", n)
	}
	var info JobInfo
	eventually(t, "the run recorded as ended", func() bool {
		info, _ = rt.JobInfo(j.ID())
		return !info.Completed.IsZero()
	})
	if info.Queue != DefaultQueue || info.Agent != "main" || info.Result != "42" || info.Failed || info.Reassigned ||
		info.Started.IsZero() || info.PollID < 1 || info.Call != "add(40, 2)" {
		t.Fatalf("JobInfo: %+v", info)
	}
	eventually(t, "RUNNING", func() bool { return rt.StatusInfo().Status == DispatcherRunning })
	if st := rt.StatusInfo(); st.UUID != "d-"+t.Name() || st.Uptime <= 0 {
		t.Fatalf("status: %+v", st)
	}

	b := mustPut(t, rt, NewCall("block"))
	<-started
	// The agent tells the historian of a run as it starts it: the handler may run a moment
	// before the run is listed.
	eventually(t, "the blocked job listed active", func() bool {
		return slices.Equal(rt.ActiveJobIDs(DefaultQueue, ""), []string{b.ID()})
	})
	polls := rt.Polls(time.Time{}, time.Time{}, 2)
	if len(polls) == 0 || polls[0].Queues[DefaultQueue].Agents["main"].Size != 3 {
		t.Fatalf("polls: %+v", polls)
	}
	if p, ok := rt.PollInfo(polls[0].ID); !ok || p.ID != polls[0].ID {
		t.Fatalf("PollInfo(%d): %+v %v", polls[0].ID, p, ok)
	}
	close(release)
	waitInt(t, b)
	eventually(t, "two successful runs", func() bool {
		s := rt.Statistics(time.Time{}, time.Time{}, DefaultQueue, "main")
		return s.Started == 2 && s.Successful == 2
	})

	stopped = true
	if err := rt.Stop(testCtx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := rt.StatusInfo(); st.Status != DispatcherStopped {
		t.Fatalf("after Stop: %+v", st)
	}
	if _, ok := rt.JobInfo(j.ID()); ok {
		t.Fatal("a stopped runtime still describes a job: introspection is of the running dispatcher")
	}
}

// eventually polls cond (a condition, not a timing) until it holds, for at most 30 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 30*time.Second, what, cond)
}

// eventuallyWithin polls cond until it holds, for at most limit. The polls space out, from
// 2 ms to 50 ms: a condition that reads many jobs (a count) must not load the store that the
// awaited work needs on a busy machine.
func eventuallyWithin(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	wait := 2 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(wait) // polling a condition with a deadline
		wait = min(2*wait, 50*time.Millisecond)
	}
}

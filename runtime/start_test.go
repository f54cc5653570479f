package runtime

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/persistence"
)

// A runtime started with the UUID of one that runs, in this process or another of this host,
// refuses, saying which; with WaitForTakeover it starts, says so once, and takes the queue
// over when the other stops. A record left by a process that is gone is no refusal.
func TestStartRefusesALiveUUID(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "twin")
	ctx := testCtx(t)
	cfg := func(uuid string) Config {
		return Config{Redis: rdb, Prefix: prefix, UUID: uuid, PollInterval: 20 * time.Millisecond,
			PingInterval: 50 * time.Millisecond, PingDeathInterval: 500 * time.Millisecond}
	}
	first := newRuntime(t, cfg("twin"))
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first runtime activated", func() bool {
		d, err := first.store.Dispatcher(ctx, DefaultQueue, "twin")
		return err == nil && d.IsActivated()
	})

	second := newRuntime(t, cfg("twin"))
	err := second.Start(ctx)
	if !errors.Is(err, ErrAlreadyActivated) || !strings.Contains(err.Error(), "UUID twin is in use in queue default by process ") ||
		!strings.Contains(err.Error(), "WaitForTakeover") {
		t.Fatalf("a second Start with a live UUID: %v", err)
	}
	if err := second.Stop(ctx); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("the refused runtime is started: %v", err)
	}

	logs := &testlog.Recorder{}
	c := cfg("twin")
	c.WaitForTakeover, c.Logger = true, slog.New(logs)
	waiting := newRuntime(t, c)
	if err := waiting.Start(ctx); err != nil {
		t.Fatalf("Start with WaitForTakeover: %v", err)
	}
	defer waiting.Stop(context.Background())
	eventually(t, "the waiting runtime says the UUID is taken", func() bool {
		_, ok := logs.Find(slog.LevelError, "UUID twin already activated in queue default: another process?")
		return ok
	})
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the waiting runtime took over", func() bool {
		_, ok := logs.Find(slog.LevelWarn, "took over UUID twin in queue default")
		return ok
	})
	n := 0
	for _, r := range logs.Records() {
		if strings.Contains(r.Message, "already activated") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the waiting runtime said %d times that the UUID was taken, want once", n)
	}
}

// A record of this host left by a process that is gone, or by this process id when no
// runtime of it runs with that UUID (a restarted container), does not refuse a start.
func TestStartTakesOverAGoneProcess(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "gone")
	ctx := testCtx(t)
	host, _ := os.Hostname()
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uuid string
		pid  int
	}{{"gone-pid", exited.Process.Pid}, {"same-pid", os.Getpid()}} {
		rt := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: tc.uuid, PollInterval: 20 * time.Millisecond,
			PingInterval: 50 * time.Millisecond, PingDeathInterval: 300 * time.Millisecond})
		rec := persistence.DispatcherConfig{PingInterval: 40 * time.Millisecond, PingDeathInterval: 300 * time.Millisecond,
			Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}, Host: host, PID: tc.pid}
		if err := rt.store.Register(ctx, DefaultQueue, tc.uuid, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.store.Activate(ctx, DefaultQueue, tc.uuid); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatalf("Start over the record of %s: %v", tc.uuid, err)
		}
		eventually(t, "the takeover of "+tc.uuid, func() bool {
			d, err := rt.store.Dispatcher(ctx, DefaultQueue, tc.uuid)
			return err == nil && d.IsActivated() && d.PID == os.Getpid() && d.PingDeathInterval == 300*time.Millisecond && d.PingInterval == 50*time.Millisecond
		})
		if err := rt.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

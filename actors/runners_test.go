package actors

import (
	"context"
	"sync"
	"testing"
	"time"
)

// waitUntil polls cond until it holds, failing the test after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *runners) state() (idle, made int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.made
}

// Runs one after another go on one runner; it ends when its node stops.
func TestRunnersAreReused(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newRunners(base)
	for i := range 3 {
		done := make(chan struct{})
		p.start(func() { close(done) })
		<-done
		waitUntil(t, "the runner to be idle", func() bool { idle, _ := p.state(); return idle == 1 })
		if _, made := p.state(); made != 1 {
			t.Fatalf("run %d: %d runners started, want the first one reused", i, made)
		}
	}
	cancel()
	waitUntil(t, "the idle runner to end with its node", func() bool { idle, _ := p.state(); return idle == 0 })
}

// Runs at once get a runner each; an idle runner ends after a while, and a run handed to a
// runner as it ends still runs.
func TestRunnersEndWhenIdle(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newRunners(base)
	p.idleFor = time.Microsecond
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 {
		wg.Add(1)
		p.start(func() { <-release; wg.Done() })
	}
	if _, made := p.state(); made != 4 {
		t.Fatalf("%d runners for 4 runs at once, want 4", made)
	}
	close(release)
	wg.Wait()
	waitUntil(t, "the idle runners to end", func() bool { idle, _ := p.state(); return idle == 0 })
	// Runners come and go as fast as possible: no run is lost between them.
	for range 1000 {
		done := make(chan struct{})
		p.start(func() { close(done) })
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("a run handed to a runner never ran")
		}
	}
}

package actors

import (
	"context"
	"slices"
	"sync"
	"time"
)

// runnerIdle is how long a runner waits for another run before it ends.
const runnerIdle = 10 * time.Second

// runners are the goroutines that runs go on, kept for the next runs once their run ends: a
// goroutine started per job grew its stack again for every handler, and was a good part of
// the CPU a node spends on a short job. The most recently idle runner goes first (its stack
// is warm); a runner idle for runnerIdle, or whose node stops, ends.
type runners struct {
	base    context.Context
	idleFor time.Duration // runnerIdle, but for tests
	mu      sync.Mutex
	idle    []*runner // guarded by mu
	made    int       // runners started so far; guarded by mu
}

func newRunners(base context.Context) *runners { return &runners{base: base, idleFor: runnerIdle} }

type runner struct{ next chan func() }

// start runs f on an idle runner, or on a new one.
func (p *runners) start(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		r := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		r.next <- f // capacity 1, and only the one who took r from idle sends: never blocks
		return
	}
	p.made++
	p.mu.Unlock()
	r := &runner{next: make(chan func(), 1)}
	go r.loop(p, f)
}

func (r *runner) loop(p *runners, f func()) {
	idle := time.NewTimer(p.idleFor)
	defer idle.Stop()
	for {
		f()
		p.mu.Lock()
		p.idle = append(p.idle, r)
		p.mu.Unlock()
		idle.Reset(p.idleFor)
		select {
		case f = <-r.next:
			continue
		case <-idle.C:
		case <-p.base.Done():
		}
		// Leave, unless a run was handed over meanwhile: then it is run first.
		p.mu.Lock()
		i := slices.Index(p.idle, r)
		if i >= 0 {
			p.idle = slices.Delete(p.idle, i, i+1)
		}
		p.mu.Unlock()
		if i >= 0 {
			return
		}
		f = <-r.next
	}
}

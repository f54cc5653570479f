package runtime

import (
	"context"
	"sync"

	"github.com/zasync/zasync/persistence"
)

// waiters share one subscription per queue to the store's completion notifications among all
// of a runtime's waits (Job.Wait, and Notify's waits): a subscription is a connection to
// Redis of its own, and a program waiting on a thousand jobs must not open a thousand.
type waiters struct {
	store  persistence.Store
	mu     sync.Mutex
	queues map[string]*queueWaiters // guarded by mu
	closed bool                     // guarded by mu
}

// queueWaiters is one queue's subscription and the waits on it.
type queueWaiters struct {
	sub persistence.Subscription
	// jobs: job id → the signals of the waits for it. Guarded by waiters.mu.
	jobs map[string]map[chan struct{}]struct{}
	// ended is closed when the subscription ends: its waits carry on with re-reads alone.
	ended chan struct{}
}

func newWaiters(s persistence.Store) *waiters {
	return &waiters{store: s, queues: map[string]*queueWaiters{}}
}

// watch makes signal receive a value whenever ref's completion is published, from now on
// (the subscription is confirmed when it returns); ended is closed if the subscription ends
// first. stop forgets the watch.
func (w *waiters) watch(ctx context.Context, ref persistence.Ref) (signal <-chan struct{}, ended <-chan struct{}, stop func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queues[ref.Queue]
	private := w.closed // after Close, a wait (on a client the program keeps) subscribes alone
	if q == nil || private {
		// Subscribing under the lock makes the other waits of the queue wait for the
		// confirmation too, which they need before their first read anyway.
		sub, err := w.store.Completions(ctx, ref.Queue)
		if err != nil {
			return nil, nil, nil, err
		}
		q = &queueWaiters{sub: sub, jobs: map[string]map[chan struct{}]struct{}{}, ended: make(chan struct{})}
		if !private {
			w.queues[ref.Queue] = q
		}
		go w.fanOut(ref.Queue, q)
	}
	c := make(chan struct{}, 1)
	if q.jobs[ref.ID] == nil {
		q.jobs[ref.ID] = map[chan struct{}]struct{}{}
	}
	q.jobs[ref.ID][c] = struct{}{}
	stop = func() {
		if private {
			q.sub.Close()
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if set := q.jobs[ref.ID]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(q.jobs, ref.ID)
			}
		}
	}
	return c, q.ended, stop, nil
}

// fanOut signals the waits of each job whose completion q's subscription hears, until the
// subscription ends; then the next watch of the queue subscribes again.
func (w *waiters) fanOut(queue string, q *queueWaiters) {
	for id := range q.sub.C() {
		w.mu.Lock()
		for c := range q.jobs[id] {
			select {
			case c <- struct{}{}:
			default: // signalled already
			}
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	if w.queues[queue] == q {
		delete(w.queues, queue)
	}
	w.mu.Unlock()
	close(q.ended)
}

// close ends every subscription; the waits still going carry on with re-reads.
func (w *waiters) close() {
	w.mu.Lock()
	w.closed = true
	subs := make([]persistence.Subscription, 0, len(w.queues))
	for _, q := range w.queues {
		subs = append(subs, q.sub)
	}
	w.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

package runtime

import (
	"context"
	"sync"

	"github.com/zasync/zasync/persistence"
)

// waiters share one subscription per queue to the store's completion notifications among all
// of a runtime's waits (Job.Wait, and Notify's waits): a subscription is a connection to
// Redis of its own, and a program waiting on a thousand jobs must not open a thousand.
//
// No Redis call is made under mu: a queue's subscription is made by its first wait, outside
// the lock, while the next waits of that queue wait for it (ready), and those of other queues
// go on.
type waiters struct {
	store  persistence.Store
	mu     sync.Mutex
	queues map[string]*queueWaiters // guarded by mu
	closed bool                     // guarded by mu
}

// queueWaiters is one queue's subscription and the waits on it.
type queueWaiters struct {
	// ready is closed once the subscription is made, or failed (err).
	ready chan struct{}
	sub   persistence.Subscription
	err   error
	// ended is closed when the subscription ends: its waits carry on with re-reads alone.
	ended chan struct{}

	mu sync.Mutex
	// jobs: job id → the signals of the waits for it. Guarded by mu.
	jobs map[string]map[chan struct{}]struct{}
}

func newWaiters(s persistence.Store) *waiters {
	return &waiters{store: s, queues: map[string]*queueWaiters{}}
}

func newQueueWaiters() *queueWaiters {
	return &queueWaiters{ready: make(chan struct{}), ended: make(chan struct{}), jobs: map[string]map[chan struct{}]struct{}{}}
}

// watch makes signal receive a value whenever ref's completion is published, from now on
// (the subscription is confirmed when it returns); ended is closed if the subscription ends
// first. stop forgets the watch.
func (w *waiters) watch(ctx context.Context, ref persistence.Ref) (signal <-chan struct{}, ended <-chan struct{}, stop func(), err error) {
	for {
		q, private, err := w.queue(ctx, ref.Queue)
		if err != nil {
			return nil, nil, nil, err
		}
		if q == nil {
			continue // the subscription another wait was making failed: make it again
		}
		c := make(chan struct{}, 1)
		q.mu.Lock()
		if q.jobs[ref.ID] == nil {
			q.jobs[ref.ID] = map[chan struct{}]struct{}{}
		}
		q.jobs[ref.ID][c] = struct{}{}
		q.mu.Unlock()
		stop = func() {
			if private {
				q.sub.Close()
				return
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			if set := q.jobs[ref.ID]; set != nil {
				delete(set, c)
				if len(set) == 0 {
					delete(q.jobs, ref.ID)
				}
			}
		}
		return c, q.ended, stop, nil
	}
}

// queue returns the subscription of queue name, made and confirmed. After Close (or in a
// detached runtime, which has none) it is a private one, for one wait (private). A nil q and
// nil error: the subscription another wait was making for the queue failed, try again.
func (w *waiters) queue(ctx context.Context, name string) (q *queueWaiters, private bool, err error) {
	w.mu.Lock()
	private = w.closed
	q = w.queues[name]
	mine := q == nil || private
	if mine {
		q = newQueueWaiters()
		if !private {
			w.queues[name] = q
		}
	}
	w.mu.Unlock()
	if !mine {
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if q.err != nil { // its maker's failure, not this wait's: unless it gave up, try again
			return nil, false, ctx.Err()
		}
		return q, false, nil
	}
	q.sub, q.err = w.store.Completions(ctx, name)
	closedMeanwhile := false
	if q.err == nil && !private {
		w.mu.Lock()
		closedMeanwhile = w.closed // then close() left this subscription to its maker
		w.mu.Unlock()
		if closedMeanwhile {
			q.sub.Close()
			q.err = ErrClosed
		}
	}
	if q.err != nil {
		w.mu.Lock()
		if w.queues[name] == q {
			delete(w.queues, name)
		}
		w.mu.Unlock()
		close(q.ready)
		if closedMeanwhile {
			return nil, false, nil // try again: a wait after Close subscribes alone
		}
		return nil, false, q.err
	}
	close(q.ready)
	go w.fanOut(name, q)
	return q, private, nil
}

// fanOut signals the waits of each job whose completion q's subscription hears, until the
// subscription ends; then the next watch of the queue subscribes again.
func (w *waiters) fanOut(queue string, q *queueWaiters) {
	for id := range q.sub.C() {
		q.mu.Lock()
		for c := range q.jobs[id] {
			select {
			case c <- struct{}{}:
			default: // signalled already
			}
		}
		q.mu.Unlock()
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
	qs := make([]*queueWaiters, 0, len(w.queues))
	for _, q := range w.queues {
		qs = append(qs, q)
	}
	w.mu.Unlock()
	for _, q := range qs {
		<-q.ready // a subscription being made is closed by its maker, which sees closed
		if q.err == nil {
			q.sub.Close()
		}
	}
}

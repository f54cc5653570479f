package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// queueActor is one queue's actor in this process: "queue/<name>" below zasync's root, one per
// queue the runtime puts into or serves. It makes the queue's puts and listens for its
// wake-ups. Puts from any number of goroutines and actors
// are coalesced: a put that arrives when no store call of the queue is on its way is sent at
// once, and the puts that arrive while calls are on their way wait and go together in a later
// one (a cohort), as one PutEach call, each put refused or made on its own. Up to
// maxPutFlights calls are on their way at once: another goes when the puts waiting are a fair
// share of those in play (see mayFly), so that callers putting at once settle into that many
// cohorts, one being written while Redis works on another. A busy queue's cohorts grow with
// its load, and an idle queue adds no wait to a put.
//
// Receive never waits on Redis: the store call of a cohort runs outside it, and its end comes
// back as a message. It runs on the goroutine of one of the cohort's puts made through
// Queue.Put, which waits for its answer anyway (see carry), or else on a goroutine of its
// own. The actor handles its messages on its senders' goroutines (see queueProps).
//
// Wake-ups: while dispatchers of this process serve the queue (they say so with Serve), a
// listener goroutine holds the store's subscription to the queue's wake-ups (a put from any
// process) and tells the actor, which sends each of them a Wake, so that their agents claim
// at once; once subscribed, it wakes them once for the puts made while it subscribed. The
// listener stops when the last of them stops. If it cannot subscribe, or its
// subscription ends, the next Serve (every poll) starts another: until then, the queue's
// jobs are claimed at polls.
//
// A job revoked while a run may hold it comes on the same subscription (a revoke notice): the
// actor passes it to the dispatchers as messages.Revoked, for the run to be cancelled.
//
// Takes messages.Put (from programs' actors), localPut (from Queue.Put, for Queue.Put and
// Queue.PutMany), cohort (its own, back when its store call has returned), messages.Serve
// (from dispatchers), messages.Wake, messages.Revoked and listenerEnded (from its listener)
// and Terminated (a dispatcher it wakes stopped); sends messages.PutDone to each put's
// sender, from the cohort's goroutine, and messages.Wake and messages.Revoked to the
// dispatchers that serve the queue.
type queueActor struct {
	p *putter
	// pending are the puts that arrived since the last cohort was sent, in their order.
	pending []queuedPut
	// flying are the cohorts whose store calls are on their way, maxPutFlights at most.
	flying []*cohort
	// peak is the recent high of the puts in play (see mayFly): raised by each put, lowered
	// a little as each cohort comes back.
	peak int
	// byMessage: a put sent by an actor waits in pending (see mayFly).
	byMessage bool
	// stopping: the actor stops; puts are refused from now on.
	stopping bool
	// servers are the dispatchers of this process that serve the queue, woken at its puts.
	servers []*actor.PID
	// listening stops the wake-up listener; nil when none runs.
	listening *listener
}

// listener is a wake-up listener goroutine of a queue actor.
type listener struct {
	stop context.CancelFunc
}

// listenerEnded tells a queue actor that its listener l ended on its own: it could not
// subscribe, or its subscription closed.
type listenerEnded struct{ l *listener }

// queuedPut is a put waiting for its cohort, with whom to answer: its local caller, or the
// actor that sent it (nil: no one).
type queuedPut struct {
	m      *messages.Put
	local  *localPut
	sender *actor.PID
}

// localPut is a put from a goroutine outside the actor system (Queue.Put), which waits for
// its answer on reply. While it waits, it may be handed its cohort instead, to make the
// store call on its own goroutine: then it gets the answer after that call.
type localPut struct {
	m *messages.Put
	// ctx is the caller's: a cohort of this put alone makes its store call with it, as a
	// direct call to the store would.
	ctx   context.Context
	reply chan any     // *messages.PutDone or *cohort; room for one, never more is sent
	state atomic.Int32 // putWaiting, putHanded or putGone
}

// The states of a localPut: its caller waits, or carries its cohort, or has stopped waiting
// (and carries nothing: its cohort goes to a goroutine of its own).
const (
	putWaiting int32 = iota
	putHanded
	putGone
)

// cohort is the puts sent in one store call. Sent back to the actor that sent it (self) once
// its store call has returned and its puts are answered, it tells that the next cohort may go.
type cohort struct {
	puts []queuedPut
	self *actor.PID
}

// ErrClosed reports a put refused because the runtime was closed: the queue actor stopped
// before it could send the put to the store, and nothing was written.
var ErrClosed = errors.New("zasync: runtime closed")

// errRestarted refuses the puts a queue actor held when it panicked: unavailable, so that a
// retry policy tries again, and nothing was written.
var errRestarted = fmt.Errorf("%w: the queue actor restarted before sending the put", persistence.ErrUnavailable)

// putTimeout bounds a store call whose puts have no deadline of their own.
const putTimeout = time.Minute

func (q *queueActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *localPut:
		q.take(c, queuedPut{m: m.m, local: m})
	case *messages.Put:
		q.take(c, queuedPut{m: m, sender: c.Sender()})
	case *cohort:
		i := slices.Index(q.flying, m)
		if i < 0 { // a cohort of the incarnation before a restart
			return
		}
		q.flying = slices.Delete(q.flying, i, i+1)
		q.peak = max(q.inPlay(), q.peak-(q.peak+7)/8)
		if len(q.pending) > 0 && !q.stopping && q.mayFly() {
			q.send(c)
		}
	case *messages.Serve:
		q.serve(c, m.Dispatcher)
	case *messages.Wake, *messages.Revoked:
		for _, d := range q.servers {
			c.Send(d, m)
		}
	case *listenerEnded:
		if m.l == q.listening {
			q.listening = nil
		}
	case *actor.Terminated:
		q.servers = slices.DeleteFunc(q.servers, func(d *actor.PID) bool { return d.Equal(m.Who) })
		if len(q.servers) == 0 {
			q.stopListening()
		}
	case *actor.Restarting:
		q.refuse(errRestarted)
		q.stopListening() // the dispatchers serve again at their next poll
	case *actor.Stopping:
		q.stopping = true
		q.refuse(ErrClosed)
		q.stopListening()
	case *actor.Stopped:
		// Nothing is pending (Stopping refused it, and take answers at once since). The
		// cohorts on their way are answered with what the store did, and the listener closes
		// its subscription; Queue.Done tells when, so that the store is closed only after.
		go func() {
			q.p.flights.Wait()
			q.p.listeners.Wait()
			close(q.p.stopped)
		}()
	}
}

// serve adds d to the dispatchers woken at the queue's puts, and starts the listener if none
// runs.
func (q *queueActor) serve(c actor.Context, d *actor.PID) {
	if d == nil || q.stopping {
		return
	}
	if !slices.ContainsFunc(q.servers, d.Equal) {
		q.servers = append(q.servers, d)
		c.Watch(d)
	}
	if q.listening == nil {
		ctx, cancel := context.WithCancel(context.Background())
		q.listening = &listener{stop: cancel}
		q.p.listeners.Add(1)
		go q.p.listen(ctx, c.Self(), q.listening)
	}
}

// stopListening stops the listener, if one runs.
func (q *queueActor) stopListening() {
	if q.listening != nil {
		q.listening.stop()
		q.listening = nil
	}
}

// take queues a put, and sends the puts waiting when another store call may go.
func (q *queueActor) take(c actor.Context, p queuedPut) {
	if q.stopping {
		q.p.answer(p, nil, ErrClosed)
		return
	}
	q.pending = append(q.pending, p)
	q.byMessage = q.byMessage || p.local == nil
	q.peak = max(q.peak, q.inPlay())
	if q.mayFly() {
		q.send(c)
	} else if q.p.queued != nil {
		q.p.queued(len(q.pending))
	}
}

// maxPutFlights is how many store calls of puts a queue has on their way at most. With
// one, the callers of a busy queue waited for each round trip in turn while the node and
// Redis were each idle half the time. Against one, in alternating rounds of zasync bench,
// four measured 1.33x the enqueue rate from 16 goroutines, 1.85x from 2 or 4, 1.42x from 64
// and 1.03x from one; two or three measured less than four, six or eight less again
// (smaller cohorts, more round trips for the same puts).
const maxPutFlights = 4

// mayFly reports whether the puts waiting may go now: at once when no call is on its way;
// else, with fewer than maxPutFlights on their way, once they are a maxPutFlights-th of the
// puts in play at their recent high. Without that share, the puts that trickle in while the
// first call is out would each go alone, and the callers would settle into one large cohort
// and several of one put each, not into even ones.
//
// Puts sent by an actor go only when no call is on its way: an actor may send several
// without waiting for their answers, and its jobs are queued, and its puts answered, in the
// order it sent them, which calls on their way at once would not keep. (A Go caller waits for
// each put: its next one is sent after the last was made.)
func (q *queueActor) mayFly() bool {
	switch {
	case len(q.flying) == 0:
		return true
	case len(q.flying) >= maxPutFlights || q.byMessage:
		return false
	}
	return len(q.pending) >= max(1, q.peak/maxPutFlights)
}

// inPlay is how many puts wait for a call or are in calls on their way and not answered yet.
func (q *queueActor) inPlay() int { return len(q.pending) + int(q.p.outstanding.Load()) }

// send starts the pending puts' store call, as one cohort: it hands the cohort to the first
// local put whose caller still waits, or else to a goroutine of its own.
func (q *queueActor) send(c actor.Context) {
	co := &cohort{puts: q.pending, self: c.Self()}
	q.pending, q.byMessage = nil, false
	q.flying = append(q.flying, co)
	q.p.outstanding.Add(int64(len(co.puts)))
	q.p.flights.Add(1)
	for _, p := range co.puts {
		if p.local != nil && p.local.state.CompareAndSwap(putWaiting, putHanded) {
			p.local.reply <- co
			return
		}
	}
	go q.p.carry(co)
}

// refuse answers every pending put with err.
func (q *queueActor) refuse(err error) {
	for _, p := range q.pending {
		q.p.answer(p, nil, err)
	}
	q.pending, q.byMessage = nil, false
}

// putter makes the store calls of a queue actor. It is shared by the actor's incarnations
// and by the goroutines that carry its cohorts, and never changes.
type putter struct {
	store   persistence.Store
	queue   string
	root    *actor.RootContext // sends the answers to actors
	events  *slog.Logger
	onPut   func(jobs []*persistence.Job, notify *actor.PID)
	queued  func(pending int)
	stopped chan struct{} // closed when the actor has stopped and its cohorts are answered
	// flights counts the cohorts sent and not yet answered, of every incarnation.
	flights sync.WaitGroup
	// outstanding counts the puts of those cohorts until they are answered.
	outstanding atomic.Int64
	// listeners counts the wake-up listeners not yet ended, of every incarnation.
	listeners sync.WaitGroup
	// unheard: the last listener could not subscribe; the next failure is not logged again.
	unheard atomic.Bool
}

// subscribeTimeout bounds the store call that subscribes to a queue's wake-ups.
const subscribeTimeout = 10 * time.Second

// listen is a wake-up listener: it subscribes to the queue's wake-ups and tells the actor
// self of each, until ctx ends. It tells the actor when it ends on its own.
func (p *putter) listen(ctx context.Context, self *actor.PID, l *listener) {
	defer p.listeners.Done()
	defer func() {
		if ctx.Err() == nil {
			p.root.Send(self, &listenerEnded{l: l})
		}
	}()
	subCtx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	sub, err := p.store.Subscribe(subCtx, p.queue)
	cancel()
	if err != nil {
		// Retried at every poll: one line per outage, not one per poll.
		if ctx.Err() == nil && !p.unheard.Swap(true) {
			p.events.Warn("no wake-ups; claiming at polls only until a poll subscribes again", "error", err)
		}
		return
	}
	p.unheard.Store(false)
	defer sub.Close()
	wake := &messages.Wake{Queue: p.queue} // read only, shared by every wake-up
	// A job put while it subscribed woke no one: one wake-up now makes the dispatchers
	// claim it. (Subscribed first, then claimed: no put falls between the two.)
	p.root.Send(self, wake)
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-sub.C():
			if !ok {
				return
			}
			if ref, revoked := persistence.ParseRevokeNotice(v); revoked {
				p.root.Send(self, &messages.Revoked{Ref: ref})
				continue
			}
			p.root.Send(self, wake)
		}
	}
}

// carry makes a cohort's store call, answers its puts, and tells the actor.
func (p *putter) carry(co *cohort) {
	p.put(co.puts)
	p.outstanding.Add(-int64(len(co.puts)))
	if len(co.puts) > 1 {
		// The callers just answered are likely to put again at once: let them run before
		// the actor hears that no call is on its way, so that their puts go together in the
		// next call rather than the first of them alone and the others after it. A put that
		// found the queue idle was alone and does not wait for this.
		goruntime.Gosched()
	}
	p.flights.Done()
	p.root.Send(co.self, co)
}

// put makes one cohort's puts in one store call and answers each. A put whose sender has
// stopped waiting is left out: it is answered with why, and not written.
func (p *putter) put(puts []queuedPut) {
	now := time.Now()
	deadline := time.Time{}
	groups := make([][]persistence.JobSpec, 0, len(puts))
	live := make([]queuedPut, 0, len(puts))
	for _, qp := range puts {
		d := time.Time{}
		if l := qp.local; l != nil {
			if err := l.abandonedAt(now); err != nil {
				p.answer(qp, nil, err)
				continue
			}
			d, _ = l.ctx.Deadline()
		}
		live = append(live, qp)
		groups = append(groups, qp.m.Specs)
		if d.IsZero() {
			d = now.Add(putTimeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	var ctx context.Context
	if len(live) == 1 && live[0].local != nil {
		ctx = live[0].local.ctx
	} else {
		// Bounded by the latest of the callers' deadlines, and cancelled by none of them:
		// the call is the others' too.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(context.Background(), deadline)
		defer cancel()
	}
	jobs, errs, err := p.store.PutEach(ctx, p.queue, groups)
	if err != nil {
		for _, qp := range live {
			p.answer(qp, nil, err)
		}
		return
	}
	for i, qp := range live {
		// Heard before answered: a put is counted by the time its caller knows it is made.
		if errs[i] == nil && len(jobs[i]) > 0 && p.onPut != nil {
			p.onPut(jobs[i], qp.m.Notify)
		}
		p.answer(qp, jobs[i], errs[i])
	}
}

// abandonedAt says why the caller no longer waits for the put at now, if it does not.
func (l *localPut) abandonedAt(now time.Time) error {
	if l.state.Load() == putGone {
		return context.Canceled
	}
	select {
	case <-l.ctx.Done():
		return context.Canceled
	default:
	}
	if d, ok := l.ctx.Deadline(); ok && !now.Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// answer tells a put's sender what became of it: a local caller on its reply channel, which
// has room for it, or the actor that sent it, as a message. A put with neither is answered
// to no one.
func (p *putter) answer(qp queuedPut, jobs []*persistence.Job, err error) {
	done := &messages.PutDone{Err: err}
	if qp.m != nil {
		done.Tag = qp.m.Tag
	}
	if err == nil {
		done.Jobs = make([]persistence.Ref, len(jobs))
		for i, j := range jobs {
			done.Jobs[i] = j.Ref
		}
	}
	switch {
	case qp.local != nil:
		select {
		case qp.local.reply <- done:
		default: // cannot happen: one answer per put, and a handed cohort is taken first
			p.events.Error("a put's reply channel had no room for its answer", "queue", p.queue, "err", err)
		}
	case qp.sender != nil:
		p.root.Send(qp.sender, done)
	}
}

// queueProps runs a queue actor. Its messages are handled on the sender's goroutine (one
// at a time all the same: the mailbox sees to it), as an agent's are (see agentProps): it
// only keeps books and hands cohorts out, and a put would otherwise wake a goroutine of the
// mailbox, which would wake the goroutine of the store call.
func queueProps(p *putter) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &queueActor{p: p} },
		actor.WithDispatcher(actor.NewSynchronizedDispatcher(queueThroughput)))
}

// queueThroughput is how many messages a queue actor handles before it lets other
// goroutines run: protoactor's default.
const queueThroughput = 300

// QueueOptions configure a queue actor.
type QueueOptions struct {
	Store  persistence.Store
	Queue  string
	Logger *slog.Logger
	// OnPut, if not nil, hears of each put made, with its jobs and the PID the put named to
	// be told of their completion (nil if none). It is called on the goroutine of the store
	// call, just before the put is answered: it must not block.
	OnPut func(jobs []*persistence.Job, notify *actor.PID)
	// Queued, if not nil, is called (for tests) each time a put is held for the next cohort,
	// with how many are held; in Receive, so it must not block.
	Queued func(pending int)
}

// Queue is a running queue actor: it puts jobs into its queue, coalescing concurrent puts.
type Queue struct {
	p   *putter
	pid *actor.PID
}

// StartQueue spawns the queue actor of o.Queue below root, named "queue/<name>". It stops
// with the root: the puts that wait for their cohort are refused with ErrClosed, those on
// their way are answered with what the store did (Done tells when they all are).
func StartQueue(root *Root, o QueueOptions) (*Queue, error) {
	if err := persistence.ValidateName("queue", o.Queue); err != nil {
		return nil, err
	}
	if o.Store == nil {
		return nil, fmt.Errorf("%w: a queue actor needs a store", persistence.ErrInvalid)
	}
	p := &putter{store: o.Store, queue: o.Queue, root: root.System().Root, events: eventsLogger(o.Logger).With("actor", "queue/"+o.Queue),
		onPut: o.OnPut, queued: o.Queued, stopped: make(chan struct{})}
	pid, err := root.Spawn(queueProps(p), "queue/"+o.Queue)
	if err != nil {
		return nil, err
	}
	return &Queue{p: p, pid: pid}, nil
}

// PID is the queue actor's: a program's actor puts a job by sending it a messages.Put.
func (q *Queue) PID() *actor.PID { return q.pid }

// Done is closed once the queue actor has stopped, every put it sent to the store is
// answered and its wake-up listener has ended.
func (q *Queue) Done() <-chan struct{} { return q.p.stopped }

// Put sends m to the queue actor and waits for its answer, until ctx ends or the actor
// stops. When ctx ends first, the put may still be made, as when the reply of any write is
// lost; a ctx ended before Put is called writes nothing. m is not to be changed after.
func (q *Queue) Put(ctx context.Context, m *messages.Put) ([]persistence.Ref, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &localPut{m: m, ctx: ctx, reply: make(chan any, 1)}
	q.p.root.Send(q.pid, l)
	for {
		select {
		case r := <-l.reply:
			if co, ok := r.(*cohort); ok {
				q.p.carry(co) // its answer is in reply now
				continue
			}
			d := r.(*messages.PutDone)
			return d.Jobs, d.Err
		case <-ctx.Done():
			return q.leave(l, ctx.Err())
		case <-q.p.stopped:
			return q.leave(l, ErrClosed)
		}
	}
}

// leave ends a wait before its answer came, with err, unless the answer came meanwhile. A
// cohort handed to the caller and not carried yet goes on without it, on a goroutine of its
// own.
func (q *Queue) leave(l *localPut, err error) ([]persistence.Ref, error) {
	var r any
	if l.state.CompareAndSwap(putWaiting, putGone) {
		select {
		case r = <-l.reply:
		default:
			return nil, err
		}
	} else {
		// Handed: the cohort is in reply or about to be, or, once carried, the answer is.
		r = <-l.reply
	}
	if co, ok := r.(*cohort); ok {
		go q.p.carry(co)
		return nil, err
	}
	d := r.(*messages.PutDone)
	return d.Jobs, d.Err
}

package redisstore

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zasync/zasync/persistence"
)

// maxExpected bounds the ids put that a queue's head keeps as expected (see queueHead), and
// how many a wake-up names.
const maxExpected = 32

// heads holds, for each queue, the jobs its next claim declares to claimScript.
type heads struct{ m sync.Map } // queue name → *queueHead

// get returns queue q's head, made empty the first time.
func (h *heads) get(q string, k keys) *queueHead {
	if v, ok := h.m.Load(q); ok {
		return v.(*queueHead)
	}
	prefix := k.job(q, "")
	base := k.base(q)
	v, _ := h.m.LoadOrStore(q, &queueHead{prefix: prefix, prefixArg: prefix, k: k, q: q, base: base,
		dispatchers: k.dispatchers(q), putback: k.putback(q), pending: k.pending(q), agents: k.agents(q), done: k.done(q),
		failed: k.failed(q)})
	return v.(*queueHead)
}

// maxOwnerKeys bounds how many agents' keys a queueHead keeps: a queue claimed by more
// agents over a store's life (dispatchers restarted many times) builds the others' per call.
const maxOwnerKeys = 256

// ownerKeys are one agent's keys in a queue and its name as a script argument, made once:
// building them for every claim and commit was a few allocations a batch.
type ownerKeys struct {
	text                           any // "uuid/agent"
	ping, agent, parked, completed string
	lastTaken                      atomic.Int32 // how many jobs the agent's last claim took
	trimmed                        atomic.Int64 // when a commit last trimmed its history, Unix µs
}

// trimEvery is how often a commit trims its agents' completed histories. Trimming in every
// commit was a Redis command per batch, which a queue served by an agent of size 1 pays per
// job; entries the records of which expired meanwhile wait a second at most (and the
// supervisor's sweep trims every agent of the queue in any case).
const trimEvery = time.Second

// trimDue reports whether a commit at now of runs held by agents trims their histories: one
// of them was not trimmed for trimEvery. It then counts them all as trimmed.
func (h *queueHead) trimDue(agents []persistence.Owner, now time.Time) bool {
	at := now.UnixMicro()
	due := false
	for _, o := range agents {
		if at-h.owner(o).trimmed.Load() >= trimEvery.Microseconds() {
			due = true
			break
		}
	}
	if due {
		for _, o := range agents {
			h.owner(o).trimmed.Store(at)
		}
	}
	return due
}

// owner returns the keys of agent o in the queue.
func (h *queueHead) owner(o persistence.Owner) *ownerKeys {
	if v, ok := h.owners.Load(o); ok {
		return v.(*ownerKeys)
	}
	ok := &ownerKeys{text: o.String(), ping: h.k.ping(h.q, o.Dispatcher), agent: h.k.agent(h.q, o),
		parked: h.k.parked(h.q, o), completed: h.k.completed(h.q, o)}
	if h.nOwners.Load() >= maxOwnerKeys {
		return ok
	}
	if v, loaded := h.owners.LoadOrStore(o, ok); loaded {
		return v.(*ownerKeys)
	}
	h.nOwners.Add(1)
	return ok
}

// queueHead is what a store knows of the head of one queue: the jobs the last claim's script
// saw there, and the jobs put since that no claim has declared yet, by their keys (the script
// answers keys, so that declaring them again costs nothing). A claim declares both, so that a
// queue claimed by one store, or woken by a put, costs one run of claimScript.
type queueHead struct {
	prefix    string // the queue's job keys start with it
	prefixArg any    // prefix, made a script argument once

	// The queue's keys the scripts are given on every call, made once.
	k                                     keys
	q                                     string
	base                                  string // the queue's key prefix
	dispatchers, putback, pending, agents string
	done                                  string   // the done channel
	failed                                string   // the index of failures
	owners                                sync.Map // persistence.Owner → *ownerKeys
	nOwners                               atomic.Int32

	// largeCalls: most calls the last claim took were large (see claim.call).
	largeCalls atomic.Bool

	// The priorities other than the default that the queue's last claim through this store
	// answered in use, or that its puts through this store used since (see priorities.go).
	inUse atomic.Pointer[levelSet]

	mu       sync.Mutex
	ids      []string        // the head after the last claim, in queue order
	reserved map[string]bool // keys of ids that claims on their way expect to take
	expected []string        // jobs put (here, or named by a wake-up) and not declared since, oldest first
}

// reserve returns the keys a claim that may take take jobs declares, want of the head at
// most and the expected ones, and marks the first take of them as this claim's, returned as
// mine. A key that a claim on its way expects to take is skipped: two claims of one queue on
// their way at once (two batches of a node) declare different jobs, where they would both
// declare the same ones, and the second, finding them gone, would stop at the first id it had
// not declared and run again.
func (h *queueHead) reserve(want, take int) (cands, mine []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.ids {
		if len(cands) >= want {
			break
		}
		if !h.reserved[k] {
			cands = append(cands, k)
		}
	}
	if n := min(take, len(cands)); n > 0 {
		if h.reserved == nil {
			h.reserved = map[string]bool{}
		}
		mine = cands[:n:n]
		for _, k := range mine {
			h.reserved[k] = true
		}
	}
	return append(cands, h.expected...), mine
}

// release forgets the keys a claim reserved, once its answer is back.
func (h *queueHead) release(mine []string) {
	if len(mine) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range mine {
		delete(h.reserved, k)
	}
}

// saw records a claim's answer: head is the queue's head after the claim, declared what the
// claim had declared. Expected jobs that the claim declared are no longer expected: the claim
// took them, or they are in head now, or behind it.
func (h *queueHead) saw(head, declared []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ids = head
	h.expected = slices.DeleteFunc(h.expected, func(id string) bool { return slices.Contains(declared, id) })
}

// expect adds the key of a job just put, unless maxExpected are expected already (a queue
// put to faster than it is claimed: its head has enough to claim meanwhile).
func (h *queueHead) expect(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.expected) < maxExpected && !slices.Contains(h.expected, key) {
		h.expected = append(h.expected, key)
	}
}

// wakePayload is what a put publishes on the queue's wake channel: the queue's name, then the
// ids put (maxExpected at most), separated by spaces, which subscribing stores expect.
func wakePayload(q string, jobs []*persistence.Job) string {
	var b strings.Builder
	b.WriteString(q)
	for _, j := range jobs[:min(len(jobs), maxExpected)] {
		b.WriteByte(' ')
		b.WriteString(j.ID)
	}
	return b.String()
}

package actors

import (
	"context"
	"errors"

	"github.com/zasync/zasync/persistence"
)

// maxCommitBatch bounds how many commits go to the store in one transaction.
const maxCommitBatch = 64

// committer batches the commits of concurrent runs. A run hands its outcome over and waits;
// the commits waiting when the committer is free go to the store together, one CommitMany per
// queue (two round trips for the whole batch), each still fenced on its own. Nothing waits
// for a batch to fill: under low load a commit goes alone, at once; under load commits pile
// up while one batch is in flight and go together in the next.
type committer struct {
	store persistence.Store
	base  context.Context // the committer stops with it
	op    func() (context.Context, context.CancelFunc)
	reqs  chan *commitReq
}

type commitReq struct {
	c     persistence.Commit
	reply chan commitRes
}

type commitRes struct {
	job *persistence.Job
	err error
}

// errStopping is returned for a commit asked of a committer whose node is stopping.
var errStopping = errors.New("zasync: node stopping")

func newCommitter(base context.Context, s persistence.Store, op func() (context.Context, context.CancelFunc)) *committer {
	c := &committer{store: s, base: base, op: op, reqs: make(chan *commitReq)}
	go c.run()
	return c
}

// commit stores o for the run f, in a batch with whatever other commits are waiting, and
// returns what Store.Commit would have.
func (c *committer) commit(f persistence.Fence, o persistence.Outcome) (*persistence.Job, error) {
	r := &commitReq{c: persistence.Commit{Fence: f, Outcome: o}, reply: make(chan commitRes, 1)}
	select {
	case c.reqs <- r:
	case <-c.base.Done():
		return nil, errStopping
	}
	res := <-r.reply // the committer always answers a request it took
	return res.job, res.err
}

func (c *committer) run() {
	for {
		var first *commitReq
		select {
		case first = <-c.reqs:
		case <-c.base.Done():
			return
		}
		batch := []*commitReq{first}
	more:
		for len(batch) < maxCommitBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.flush(batch)
	}
}

// flush commits a batch, one transaction per queue (a transaction stays in one slot).
func (c *committer) flush(batch []*commitReq) {
	byQueue := map[string][]*commitReq{}
	for _, r := range batch {
		byQueue[r.c.Fence.Queue] = append(byQueue[r.c.Fence.Queue], r)
	}
	for _, rs := range byQueue {
		ctx, cancel := c.op()
		if len(rs) == 1 {
			j, err := c.store.Commit(ctx, rs[0].c.Fence, rs[0].c.Outcome)
			cancel()
			rs[0].reply <- commitRes{j, err}
			continue
		}
		commits := make([]persistence.Commit, len(rs))
		for i, r := range rs {
			commits[i] = r.c
		}
		jobs, errs, err := c.store.CommitMany(ctx, commits)
		cancel()
		for i, r := range rs {
			if err != nil {
				r.reply <- commitRes{nil, err}
				continue
			}
			r.reply <- commitRes{jobs[i], errs[i]}
		}
	}
}

package runtime

import (
	"context"
	"fmt"

	"github.com/zasync/zasync/persistence"
)

// QueueStats counts a queue's jobs by where they wait: due (put-back ones included),
// scheduled for later, put back after an interruption, and held by agents.
type QueueStats = persistence.QueueStats

// Stats counts the queue's jobs, in a few Redis commands whatever the queue's size.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	st, err := q.rt.store.Stats(ctx, q.name)
	if err != nil {
		return QueueStats{}, fmt.Errorf("stats of %q: %w", q.name, err)
	}
	return st, nil
}

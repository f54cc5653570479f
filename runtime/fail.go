package runtime

import (
	"context"
	"fmt"

	"github.com/zasync/zasync/persistence"
)

// Fail fails a job that has not started yet (waiting in its queue, or claimed but not yet
// started) with err, or with a TimeoutError when err is nil, as zc.async's fail(): the
// failure becomes its result, its callbacks run (a dispatcher serving its queue runs them,
// through a resumeCallbacks job queued in the same transaction) and it completes. A job
// already running or completed cannot be failed: ErrBadStatus. Failing a job that has failed
// already changes nothing.
func (j *Job) Fail(ctx context.Context, err error) error {
	if err == nil {
		err = &persistence.TimeoutError{}
	}
	if _, e := j.rt.store.Cancel(ctx, j.ref, persistence.NewFailure(err, "")); e != nil {
		return fmt.Errorf("fail %s: %w", j.ref, e)
	}
	return nil
}

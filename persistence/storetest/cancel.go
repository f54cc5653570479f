package storetest

import (
	"errors"
	"testing"

	"github.com/zasync/zasync/persistence"
)

func init() {
	register("Cancel",
		testCase{"PendingJob", testCancelPending},
		testCase{"Refused", testCancelRefused},
	)
}

// A cancelled pending job is failed, out of the queue, and one resumeCallbacks job for it
// waits in the queue (so that its callbacks run and it completes); cancelling it again
// changes nothing.
func testCancelPending(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("work")
	got, err := b.s.Cancel(b.ctx, j.Ref, persistence.NewFailure(&persistence.TimeoutError{}, ""))
	if err != nil || got.Status != persistence.StatusCallbacks || !persistence.IsKind(got.Failure, "TimeoutError") {
		t.Fatalf("Cancel: %+v %v, want CALLBACKS with a TimeoutError", got, err)
	}
	pending := b.pending(Queue)
	if len(pending) != 1 {
		t.Fatalf("queue %v, want one resumeCallbacks job", pending)
	}
	sys := b.get(j.Ref.In(pending[0]))
	if sys.Call.Handler != persistence.HandlerResumeCallbacks || sys.Target != j.ID || sys.RetryPolicy != persistence.RetryCommonForeverName {
		t.Fatalf("queued %s for %s (%s), want resumeCallbacks for %s with RetryCommonForever", sys.Call.Handler, sys.Target, sys.RetryPolicy, j.ID)
	}
	if again, err := b.s.Cancel(b.ctx, j.Ref, persistence.NewFailure(errors.New("again"), "")); err != nil || again.Failure.Type != "TimeoutError" {
		t.Fatalf("second Cancel: %+v %v, want the job unchanged", again, err)
	}
	if p := b.pending(Queue); len(p) != 1 {
		t.Fatalf("second Cancel queued more: %v", p)
	}
}

// Running and completed jobs cannot be cancelled; nothing is queued.
func testCancelRefused(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("work")
	o := b.dispatcher()
	r := b.start(b.claimOne(o, nil).Fence())
	if _, err := b.s.Cancel(b.ctx, j.Ref, persistence.NewFailure(errors.New("no"), "")); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Cancel of an ACTIVE job: %v, want ErrBadStatus", err)
	}
	done := b.commit(r.Fence(), "1")
	b.complete(done.Fence(), 0)
	if _, err := b.s.Cancel(b.ctx, j.Ref, persistence.NewFailure(errors.New("no"), "")); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Cancel of a COMPLETED job: %v, want ErrBadStatus", err)
	}
	if p := b.pending(Queue); len(p) != 0 {
		t.Fatalf("refused cancels queued %v", p)
	}
}

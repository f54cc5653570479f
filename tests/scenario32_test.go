package tests

import (
	"context"
	"errors"
	"testing"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// Scenario 32: fail() completes a job that has not started with a TimeoutError (or the error
// given), and its failure callbacks run; a running or completed job cannot be failed.
func TestScenario32Fail(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		got := make(chan string, 2)
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		rt := w.runtime("s32", 3, map[string]runtime.HandlerFunc{
			"never": func(context.Context, *runtime.Call) (any, error) { return nil, errors.New("must not run") },
			"onFailure": func(_ context.Context, c *runtime.Call) (any, error) {
				var f runtime.Failure
				if err := c.Arg(0, &f); err != nil {
					return nil, err
				}
				got <- f.Type
				return nil, nil
			},
			"busy": func(context.Context, *runtime.Call) (any, error) { started <- struct{}{}; <-release; return 1, nil },
		})
		q := rt.Queue(runtime.DefaultQueue)
		onFailure := runtime.NewCall("onFailure")
		timeout, _ := q.Put(w.ctx, runtime.NewCall("never"))
		given, _ := q.Put(w.ctx, runtime.NewCall("never"))
		for _, j := range []*runtime.Job{timeout, given} {
			if _, err := j.AddCallbacks(w.ctx, nil, &onFailure); err != nil {
				t.Fatal(err)
			}
		}
		if err := timeout.Fail(w.ctx, nil); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		if err := given.Fail(w.ctx, errors.New("cancelled")); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		w.start(rt)
		defer w.stop(rt)
		for _, j := range []*runtime.Job{timeout, given} {
			if _, out := waitFor[any](t, w, j); out.Failure == nil {
				t.Fatalf("%s did not fail", j)
			}
		}
		kinds := map[string]bool{<-got: true, <-got: true}
		if !kinds["TimeoutError"] || !kinds["errors.errorString"] {
			t.Fatalf("failure callbacks got %v, want a TimeoutError and the given error", kinds)
		}
		if err := timeout.Fail(w.ctx, nil); !errors.Is(err, persistence.ErrBadStatus) {
			t.Fatalf("Fail of a completed job: %v, want ErrBadStatus", err)
		}
		busy, _ := q.Put(w.ctx, runtime.NewCall("busy"))
		<-started
		if err := busy.Fail(w.ctx, nil); !errors.Is(err, persistence.ErrBadStatus) {
			t.Fatalf("Fail of a running job: %v, want ErrBadStatus", err)
		}
		close(release)
		waitFor[int](t, w, busy)
	})
}

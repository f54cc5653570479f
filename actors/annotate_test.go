package actors

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// gatedAnnotations is a store whose first run annotation write waits for gate; it records the
// values written.
type gatedAnnotations struct {
	persistence.Store
	gate chan struct{}

	mu     sync.Mutex
	values []string
}

func (s *gatedAnnotations) SetRunAnnotation(ctx context.Context, f persistence.Fence, name string, value json.RawMessage) error {
	s.mu.Lock()
	s.values = append(s.values, string(value))
	first := len(s.values) == 1
	s.mu.Unlock()
	if first {
		<-s.gate
	}
	return s.Store.SetRunAnnotation(ctx, f, name, value)
}

func (s *gatedAnnotations) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.values)
}

// A handler's annotations of one name asked while one is on its way are coalesced by its job
// actor: the newest is written next, the ones between never, and every caller is answered.
func TestAnnotateCoalescesWritesOfOneName(t *testing.T) {
	f := newExecFixture(t)
	store := &gatedAnnotations{Store: f.store, gate: make(chan struct{})}
	asked := make(chan struct{}, 10)
	jobMiddleware = signalsAfter[*annotateReq](asked)
	defer func() { jobMiddleware = nil }()
	f.h["progress"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		errs := make(chan error, 3)
		for _, v := range []string{`1`, `2`, `3`} {
			go func() { errs <- Annotate(ctx, "done", json.RawMessage(v)) }()
			<-asked // the job actor has it: the next one comes after it
		}
		close(store.gate)
		for range 3 {
			if err := <-errs; err != nil {
				return nil, err
			}
		}
		return "ok", nil
	}
	sub := f.completions()
	j := f.put("progress")
	o := f.nodeOptions("n1", 1, time.Second)
	o.Store = store
	n := f.startNode(o)
	defer f.stopNode(n)
	done := f.waitDone(sub, j.ID)[j.ID]
	if done.Failed() {
		t.Fatalf("job failed: %v", done.Failure)
	}
	if got := store.written(); !slices.Equal(got, []string{`1`, `3`}) {
		t.Fatalf("annotations written: %v, want 1 then 3 (2 coalesced away)", got)
	}
	v, ok, err := f.store.Annotation(f.ctx, j.Ref, "done")
	if err != nil || !ok || string(v) != `3` {
		t.Fatalf("annotation: %s ok %v err %v, want 3", v, ok, err)
	}
}

// A run whose job was taken away has its annotations refused, and what the store holds stays.
func TestAnnotateRefusedOnceReassigned(t *testing.T) {
	f := newExecFixture(t)
	result := make(chan error, 1)
	f.h["h"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		if err := Annotate(ctx, "step", json.RawMessage(`1`)); err != nil {
			return nil, err
		}
		if _, err := f.store.Deactivate(f.ctx, "q", "n1"); err != nil { // presumed dead
			return nil, err
		}
		result <- Annotate(ctx, "step", json.RawMessage(`2`))
		return nil, nil
	}
	j := f.put("h")
	n := f.startNode(f.nodeOptions("n1", 1, time.Second))
	defer f.stopNode(n)
	if err := receive(t, result, "the handler never annotated twice"); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("annotation after the job was taken: %v, want ErrReassigned", err)
	}
	if v, ok, err := f.store.Annotation(f.ctx, j.Ref, "step"); err != nil || !ok || string(v) != `1` {
		t.Fatalf("annotation: %s ok %v err %v, want 1, the run's before it lost the job", v, ok, err)
	}
}

// Outside a handler there is no run to annotate.
func TestAnnotateOutsideAHandler(t *testing.T) {
	if err := Annotate(context.Background(), "x", json.RawMessage(`1`)); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("Annotate outside a handler: %v, want ErrInvalid", err)
	}
}

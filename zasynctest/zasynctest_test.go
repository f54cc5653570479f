package zasynctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zasync/zasync/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// RunDue runs a job put, its callback and the composite it makes, and says how many
// completed; a scheduled job waits for Advance; no uuid.txt is written.
func TestRunDueAndAdvance(t *testing.T) {
	k := New(t, runtime.Config{})
	var mu sync.Mutex
	var ran []string
	note := func(s string) {
		mu.Lock()
		ran = append(ran, s)
		mu.Unlock()
	}
	charge, err := runtime.Register(k.Runtime, "charge", func(_ context.Context, o order) (int, error) {
		note("charge " + o.ID)
		return o.Total, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := runtime.RegisterCallback(k.Runtime, "receipt", func(_ context.Context, r runtime.Result[int]) (string, error) {
		note(fmt.Sprintf("receipt %d", r.Value))
		return "ok", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := runtime.RegisterPostprocess(k.Runtime, "sum", func(_ context.Context, parts []runtime.Result[int]) (int, error) {
		n := 0
		for _, p := range parts {
			n += p.Value
		}
		note(fmt.Sprintf("sum %d", n))
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	j, err := charge.Put(ctx, runtime.DefaultQueue, order{ID: "a", Total: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.Add(ctx, j); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.SerialOf(sum, charge.Call(order{ID: "b", Total: 1}), charge.Call(order{ID: "c", Total: 2})).Put(ctx, runtime.DefaultQueue); err != nil {
		t.Fatal(err)
	}
	later, err := charge.Put(ctx, runtime.DefaultQueue, order{ID: "later", Total: 9}, runtime.BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	// The job, its callback, the composite, its two parts and its postprocess: six.
	if n := k.RunDue(); n != 6 {
		t.Fatalf("RunDue completed %d jobs, want 6", n)
	}
	mu.Lock()
	got := strings.Join(ran, ", ")
	mu.Unlock()
	for _, want := range []string{"charge a", "receipt 5", "charge b", "charge c", "sum 3"} {
		if !strings.Contains(got, want) {
			t.Fatalf("ran %s; want %s among them", got, want)
		}
	}
	if strings.Contains(got, "later") {
		t.Fatalf("the job scheduled in an hour ran: %s", got)
	}
	if n := k.RunDue(); n != 0 {
		t.Fatalf("a second RunDue completed %d jobs, want none", n)
	}

	start := k.Now()
	if now := k.Advance(time.Hour); now.Sub(start) < time.Hour {
		t.Fatalf("Advance(1h) moved the clock from %s to %s", start, now)
	}
	if n := k.RunDue(); n != 1 {
		t.Fatalf("RunDue after Advance completed %d jobs, want the scheduled one", n)
	}
	if v, err := later.Wait(ctx); err != nil || v != 9 {
		t.Fatalf("the scheduled job: %d %v", v, err)
	}
	if _, err := os.Stat(runtime.UUIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a test with the kit wrote %s: %v", runtime.UUIDFile, err)
	}
}

// fakeTB records a failure and ends its goroutine, as testing.T's Fatalf does.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	goruntime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	goruntime.Goexit()
}

// failure runs check with the kit's test replaced by a fake, and returns how it failed ("" if
// it did not).
func failure(k *Kit, check func()) string {
	real := k.t
	fake := &fakeTB{TB: real}
	k.t = fake
	defer func() { k.t = real }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		check()
	}()
	<-done
	return fake.failed
}

// RequirePut finds a job by handler and arguments (as JSON: field order aside), in any queue
// or in one; it fails, listing what was put, when none matches; RequireNotPut is its opposite.
func TestRequirePut(t *testing.T) {
	k := New(t, runtime.Config{})
	ctx := t.Context()
	j, err := k.Runtime.Queue("mail").Put(ctx, runtime.NewCall("send", order{ID: "x", Total: 3}, "fast"))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.RequirePut("send", map[string]any{"total": 3, "id": "x"}, "fast"); got.ID() != j.ID() {
		t.Fatalf("RequirePut found %s, want %s", got, j)
	}
	if got := k.RequirePut("send"); got.ID() != j.ID() {
		t.Fatalf("RequirePut by handler found %s, want %s", got, j)
	}
	k.RequirePutIn("mail", "send", order{ID: "x", Total: 3}, "fast")
	k.RequireNotPut("refund")
	if k.Jobs("sen*") != nil {
		t.Fatal("Jobs took a handler name for a glob")
	}

	for _, tc := range []struct {
		check func()
		want  string
	}{
		{func() { k.RequirePut("send", order{ID: "y", Total: 3}, "fast") }, `no job send({"id":"y","total":3}, "fast") was put in any queue; the jobs of "send": mail/`},
		{func() { k.RequirePutIn("default", "send") }, `no job send was put in queue default; the jobs of "send": mail/`},
		{func() { k.RequirePut("refund") }, `no job refund was put in any queue, nor any of "refund"`},
		{func() { k.RequireNotPut("send") }, `1 jobs of "send" were put: mail/` + j.ID()},
		{func() { k.Advance(-time.Second) }, `Advance(-1s): time only moves forward`},
	} {
		if got := failure(k, tc.check); !strings.Contains(got, tc.want) {
			t.Fatalf("the failure: %q, want it to contain %q", got, tc.want)
		}
	}
}

// RunDue fails, saying what is left, when a job does not finish within the kit's Timeout.
func TestRunDueTimesOut(t *testing.T) {
	k := New(t, runtime.Config{})
	release := make(chan struct{})
	k.Runtime.Handle("stuck", func(ctx context.Context, _ *runtime.Call) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	j, err := k.Runtime.Queue(runtime.DefaultQueue).Put(t.Context(), runtime.NewCall("stuck"))
	if err != nil {
		t.Fatal(err)
	}
	k.Timeout = 300 * time.Millisecond
	got := failure(k, func() { k.RunDue() })
	close(release)
	if !strings.Contains(got, "RunDue: not done after 300ms: queue default has 0 due, 0 put back, 1 held") {
		t.Fatalf("the failure: %q", got)
	}
	k.Timeout = 30 * time.Second
	k.RunDue() // the job may have completed already: only its end is checked
	if st, err := j.Status(t.Context()); err != nil || st != runtime.StatusCompleted {
		t.Fatalf("the released job after RunDue: %s %v", st, err)
	}
}

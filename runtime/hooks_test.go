package runtime

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
)

// Metadata: set on a call and by a put option (the call's own entry wins), read by the
// handler, kept in the record, inherited by a composite's parts and postprocess, carried by
// a callback's own call; bad metadata is refused before anything is written.
func TestCallMetadata(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]map[string]string{}
	record := func(name string) HandlerFunc {
		return func(ctx context.Context, c *Call) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			if !maps.Equal(c.Meta, MetaFrom(ctx)) {
				t.Errorf("%s: the call's metadata %v and MetaFrom's %v differ", name, c.Meta, MetaFrom(ctx))
			}
			seen[name] = c.Meta
			return 1, nil
		}
	}
	rt := startedRuntime(t, 4, func(rt *Runtime) {
		for _, n := range []string{"plain", "part", "post", "cb"} {
			rt.Handle(n, record(n))
		}
	})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	j, err := q.Put(ctx, NewCall("plain").WithMeta("request-id", "r1").WithMeta("tenant", "call"), Meta("tenant", "option"), Meta("env", "test"))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := j.AddCallback(ctx, NewCall("cb").WithMeta("who", "callback"))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := q.Put(ctx, Serial(NewCall("part"), Postprocess(NewCall("post").WithMeta("step", "last"))).WithMeta("request-id", "r2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Job{j, cb, comp} {
		if _, err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[string]string{
		"plain": {"request-id": "r1", "tenant": "call", "env": "test"},
		"cb":    {"who": "callback"},
		"part":  {"request-id": "r2"},
		"post":  {"request-id": "r2", "step": "last"},
	}
	mu.Lock()
	defer mu.Unlock()
	for name, w := range want {
		if !maps.Equal(seen[name], w) {
			t.Fatalf("%s ran with metadata %v, want %v", name, seen[name], w)
		}
	}
	if rec, err := j.Info(ctx); err != nil || !maps.Equal(rec.Call.Meta, want["plain"]) {
		t.Fatalf("the stored call's metadata: %+v %v", rec, err)
	}
	if MetaFrom(ctx) != nil {
		t.Fatal("MetaFrom outside a handler is not nil")
	}
	for _, bad := range []Call{NewCall("plain").WithMeta("", "x"), NewCall("plain").WithMeta("k", strings.Repeat("v", MaxMetaBytes))} {
		if _, err := q.Put(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a put with bad metadata: %v, want ErrInvalid", err)
		}
	}
}

// Middleware wraps every handler run, typed ones included, the first given outermost; it
// may refuse a run, whose error is then the job's.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	tag := func(name string) Middleware {
		return func(next HandlerFunc) HandlerFunc {
			return func(ctx context.Context, c *Call) (any, error) {
				note(name + ">" + c.Handler)
				if c.Meta["deny"] != "" {
					return nil, errors.New("denied by " + name)
				}
				return next(ctx, c)
			}
		}
	}
	var double *JobType[int, int]
	startedRuntime(t, 2, func(rt *Runtime) {
		rt.Use(tag("outer"), nil, tag("inner"))
		var err error
		double, err = Register(rt, "double", func(_ context.Context, n int) (int, error) { note("double"); return 2 * n, nil })
		if err != nil {
			t.Fatal(err)
		}
	})
	ctx := testCtx(t)
	j, err := double.Put(ctx, DefaultQueue, 4)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := j.Wait(ctx); err != nil || n != 8 {
		t.Fatalf("double: %d %v", n, err)
	}
	mu.Lock()
	got := strings.Join(order, " ")
	mu.Unlock()
	if got != "outer>double inner>double double" {
		t.Fatalf("the runs went %q", got)
	}
	denied, err := double.Put(ctx, DefaultQueue, 1, Meta("deny", "yes"), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := denied.Wait(ctx); err == nil || !strings.Contains(err.Error(), "denied by outer") {
		t.Fatalf("a run the middleware refused: %v", err)
	}
}

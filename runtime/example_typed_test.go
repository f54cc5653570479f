package runtime_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/zasync/zasync/runtime"
)

type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

type Sent struct {
	ID string `json:"id"`
}

// Typed jobs: a handler registered with its argument and result types, a typed callback that
// sees a failure, and a parallel composite whose postprocess gets every part's outcome.
func ExampleRegister() {
	rt, err := runtime.New(runtime.Config{UUID: "typed-example"}) // an embedded Redis
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	send, err := runtime.Register(rt, "email.send", func(ctx context.Context, e Email) (Sent, error) {
		if e.To == "" {
			return Sent{}, errors.New("no recipient")
		}
		return Sent{ID: "m-" + e.To}, nil
	}, runtime.Retry(runtime.NeverRetry))
	if err != nil {
		panic(err)
	}
	audit, err := runtime.RegisterCallback(rt, "email.audit", func(ctx context.Context, r runtime.Result[Sent]) (string, error) {
		if err := r.Err(); err != nil {
			return "not sent: " + r.Failure.Message, nil
		}
		return "sent " + r.Value.ID, nil
	})
	if err != nil {
		panic(err)
	}
	count, err := runtime.RegisterPostprocess(rt, "email.count", func(ctx context.Context, parts []runtime.Result[Sent]) (int, error) {
		n := 0
		for _, p := range parts {
			if p.Err() == nil {
				n++
			}
		}
		return n, nil
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	job, err := send.Put(ctx, "default", Email{To: "ann", Subject: "hello"})
	if err != nil {
		panic(err)
	}
	sent, err := job.Wait(ctx)
	fmt.Println(sent.ID, err)

	failing, err := send.Put(ctx, "default", Email{})
	if err != nil {
		panic(err)
	}
	note, err := audit.Add(ctx, failing)
	if err != nil {
		panic(err)
	}
	fmt.Println(note.Wait(ctx))

	all, err := runtime.ParallelOf(count, send.Call(Email{To: "bob"}), send.Call(Email{}), send.Call(Email{To: "cy"})).Put(ctx, "default")
	if err != nil {
		panic(err)
	}
	fmt.Println(all.Wait(ctx))
	// Output:
	// m-ann <nil>
	// not sent: no recipient <nil>
	// 2 <nil>
}

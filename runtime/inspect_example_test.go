package runtime_test

import (
	"context"
	"fmt"
	"time"

	"github.com/zasync/zasync/runtime"
)

// Querying the stored jobs, as zc.async's asyncdb command does: counts by state and filter,
// the next job to run, and a listing in claim order.
func ExampleRuntime_Count() {
	rt, err := runtime.New(runtime.Config{}) // no Redis client: an embedded one
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	ctx := context.Background()

	mail := rt.Queue("mail")
	mail.Put(ctx, runtime.NewCall("mail.send", "ops@example.com"), runtime.BeginAfter(time.Now().Add(-time.Minute)))
	mail.Put(ctx, runtime.NewCall("mail.digest"), runtime.BeginIn(time.Hour))
	rt.Queue("reports").Put(ctx, runtime.NewCall("report.build", 2026))

	pending := []runtime.State{runtime.StatePending}
	all, _ := rt.Count(ctx, runtime.Query{States: pending})
	mails, _ := rt.Count(ctx, runtime.Query{States: pending, Callable: "mail.*"})
	later, _ := rt.Count(ctx, runtime.Query{States: pending, RequestedStart: runtime.Window{Since: time.Now().Add(time.Minute)}})
	fmt.Println(all, mails, later)

	next, ok, _ := rt.NextPending(ctx, runtime.Query{Queue: "mail"})
	fmt.Println(ok, next.Call, next.Status)

	jobs, _ := rt.Jobs(ctx, runtime.Query{States: pending, Limit: 2})
	for _, j := range jobs {
		fmt.Println(j.Queue, j.Call)
	}

	_, err = rt.Count(ctx, runtime.Query{States: []runtime.State{runtime.StateSucceeded, runtime.StateFailed}})
	fmt.Println(err)
	// Output:
	// 3 2 1
	// true mail.send("ops@example.com") pending
	// mail mail.send("ops@example.com")
	// reports report.build(2026)
	// zasync: invalid argument: query: can only include zero or one of the states "completed", "succeeded" or "failed"
}

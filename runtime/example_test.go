package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zasync/zasync/runtime"
)

// A typed handler decodes its call's arguments into its parameters; a call that does not
// fit fails with ErrInvalid, which is not retried.
func ExampleFunc2() {
	add := runtime.Func2(func(ctx context.Context, a, b int) (int, error) { return a + b, nil })

	call := runtime.NewCall("add", 40, 2)
	fmt.Println(call)
	fmt.Println(add(context.Background(), &call))

	bad := runtime.NewCall("add", 40, "two")
	_, err := add(context.Background(), &bad)
	fmt.Println(errors.Is(err, runtime.ErrInvalid))
	// Output:
	// add(40, 2)
	// 42 <nil>
	// true
}

// Putting a job with options, and a callback on it, with the embedded Redis.
func ExampleQueue_Put() {
	rt, err := runtime.New(runtime.Config{}) // no Redis client: an embedded one
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	ctx := context.Background()

	q := rt.Queue("reports")
	if err := q.CreateQuota(ctx, "db", 2); err != nil {
		panic(err)
	}
	job, err := q.Put(ctx, runtime.NewCall("render", "2024-Q4").Kwarg("format", "pdf"),
		runtime.BeginIn(time.Hour), runtime.Quotas("db"), runtime.Retry(runtime.NeverRetry))
	if err != nil {
		panic(err)
	}
	info, err := job.Info(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.Call.String(), info.Status, info.RetryPolicy, info.QuotaNames)

	cb, err := job.AddCallback(ctx, runtime.NewCall("mail_report", "ada@example.com"))
	if err != nil {
		panic(err)
	}
	status, err := cb.Status(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("callback", status)
	// Output:
	// render("2024-Q4", format="pdf") pending NeverRetry [db]
	// callback new
}

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

// zasync end to end, on the embedded Redis: register handlers, start the dispatcher, put a
// job and wait for its result, chain a callback, and run a serial composite with a
// postprocess.
func Example() {
	rt, err := runtime.New(runtime.Config{
		// Redis: a client here in production; none runs an embedded Redis.
		// UUID: left empty in a deployment, where it comes from ZASYNC_UUID or ./uuid.txt.
		UUID: "example",
	})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	rt.Handle("add", runtime.Func2(func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	rt.Handle("announce", runtime.Func1(func(ctx context.Context, sum int) (string, error) {
		return fmt.Sprintf("the sum is %d", sum), nil
	}))
	rt.Handle("total", runtime.Func2(func(ctx context.Context, a, b runtime.SubJob) (string, error) {
		return fmt.Sprintf("%s + %s", a.Result, b.Result), nil
	}))
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	q := rt.Queue(runtime.DefaultQueue)
	job, err := q.Put(ctx, runtime.NewCall("add", 40, 2))
	if err != nil {
		panic(err)
	}
	callback, err := job.AddCallback(ctx, runtime.NewCall("announce")) // gets add's result
	if err != nil {
		panic(err)
	}
	var sum int
	if out, err := job.Wait(ctx); err != nil || out.Decode(&sum) != nil {
		panic(err)
	}
	fmt.Println(sum)
	var words string
	if out, err := callback.Wait(ctx); err != nil || out.Decode(&words) != nil {
		panic(err)
	}
	fmt.Println(words)

	serial, err := q.Put(ctx, runtime.Serial(runtime.NewCall("add", 1, 2), runtime.NewCall("add", 3, 4),
		runtime.Postprocess(runtime.NewCall("total"))))
	if err != nil {
		panic(err)
	}
	if out, err := serial.Wait(ctx); err != nil || out.Decode(&words) != nil {
		panic(err)
	}
	fmt.Println(words)
	// Output:
	// 42
	// the sum is 42
	// 3 + 7
}

package runtime_test

import (
	"context"
	"fmt"

	"github.com/zasync/zasync/runtime"
)

// A serial composite that grows while it runs: each countdown step appends the next one to
// its composite, until zero; the postprocess receives every step's outcome, in order.
func ExampleAddSubJob() {
	rt, err := runtime.New(runtime.Config{UUID: "example-subjobs"}) // an embedded Redis
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	rt.Handle("countdown", runtime.Func1(func(ctx context.Context, n int) (int, error) {
		if n > 0 {
			me, _ := runtime.JobFrom(ctx)
			composite, _, err := me.Composite(ctx)
			if err != nil {
				return 0, err
			}
			if _, err := runtime.AddSubJob(ctx, composite, runtime.NewCall("countdown", n-1)); err != nil {
				return 0, err
			}
		}
		return n, nil
	}))
	rt.Handle("steps", func(ctx context.Context, call *runtime.Call) (any, error) {
		steps := make([]string, len(call.Args))
		for i := range call.Args {
			var s runtime.SubJob
			if err := call.Arg(i, &s); err != nil {
				return nil, err
			}
			steps[i] = string(s.Result)
		}
		return steps, nil
	})
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	job, err := rt.Queue(runtime.DefaultQueue).Put(ctx,
		runtime.Serial(runtime.NewCall("countdown", 3), runtime.Postprocess(runtime.NewCall("steps"))))
	if err != nil {
		panic(err)
	}
	var steps []string
	if out, err := job.Wait(ctx); err != nil || out.Decode(&steps) != nil {
		panic(err)
	}
	fmt.Println(steps)
	// Output:
	// [3 2 1 0]
}

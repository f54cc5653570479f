package runtime_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/zasync/zasync/runtime"
)

// A periodic job: every process that declares the schedule tries each tick, and each tick's
// job, whose id names the schedule and the tick, is put once.
func ExampleRuntime_Every() {
	rt, err := runtime.New(runtime.Config{}) // an embedded Redis, serving "default"
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	ctx := context.Background()

	ran := make(chan string, 1)
	rt.Handle("heartbeat", func(ctx context.Context, c *runtime.Call) (any, error) {
		job, _ := runtime.JobFrom(ctx)
		name, _, _ := runtime.TickOf(job.ID())
		select {
		case ran <- name:
		default:
		}
		return nil, nil
	})
	// Every second (a six-field cron expression, seconds first); "@every 1s" ticks alike.
	if err := rt.Every("heartbeat", "* * * * * *", runtime.NewCall("heartbeat")); err != nil {
		panic(err)
	}
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)
	fmt.Println("ran a tick of", <-ran)

	schedules, err := rt.Schedules(ctx)
	if err != nil {
		panic(err)
	}
	s := schedules[0]
	fmt.Println(s.Queue, s.Name, s.Spec, s.Missed, strings.HasPrefix(s.LastJob, "tick.heartbeat."), len(s.Declarers))
	// Output:
	// ran a tick of heartbeat
	// default heartbeat * * * * * * run-once true 1
}

// A bad cron expression is refused at once.
func ExampleRuntime_Every_badSchedule() {
	rt, err := runtime.New(runtime.Config{Queues: []runtime.QueueConfig{{Name: "work"}}})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	err = rt.Every("nightly", "0 25 * * *", runtime.NewCall("report"), runtime.EveryQueue("reports"))
	fmt.Println(err)
	// Output:
	// every "nightly": zasync: invalid argument: schedule "0 25 * * *": end of range (25) above maximum (23): 25
}

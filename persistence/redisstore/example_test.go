package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
)

// A job's life at the store level, as the runtime drives it: a dispatcher registers and
// activates in a queue, a job is put, the dispatcher's agent claims it, starts it, and commits
// its result fenced by the claim.
func Example() {
	m, err := miniredis.Run() // or any Redis: redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	store, err := redisstore.New(rdb, redisstore.Options{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	agent := persistence.Owner{Dispatcher: "dispatcher-1", Agent: "main"}
	config := persistence.DispatcherConfig{PingInterval: 5 * time.Second, PingDeathInterval: 15 * time.Second,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 3}}}
	if err := store.Register(ctx, "emails", agent.Dispatcher, config); err != nil {
		panic(err)
	}
	if _, err := store.Activate(ctx, "emails", agent.Dispatcher); err != nil {
		panic(err)
	}

	job, err := store.Put(ctx, "emails", persistence.JobSpec{
		Call: persistence.Call{Handler: "send", Args: []json.RawMessage{json.RawMessage(`"ada@example.com"`)}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(job.Call.String(), job.Status)

	claimed, err := store.Claim(ctx, persistence.ClaimParams{Queue: "emails", Dispatcher: agent.Dispatcher, Agent: agent.Agent, Size: 3})
	if err != nil {
		panic(err)
	}
	run := claimed[0]
	fmt.Println(run.Status, "by", run.Owner, "attempt", run.Attempt)

	if run, err = store.Start(ctx, run.Fence()); err != nil {
		panic(err)
	}
	done, err := store.Commit(ctx, run.Fence(), persistence.Outcome{Result: json.RawMessage(`"sent"`), Complete: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(done.Status, string(done.Result))

	// A second commit by the same run is refused: the run is over.
	_, err = store.Commit(ctx, run.Fence(), persistence.Outcome{Result: json.RawMessage(`"again"`)})
	fmt.Println(err != nil)
	// Output:
	// send("ada@example.com") pending
	// assigned by dispatcher-1/main attempt 1
	// completed "sent"
	// true
}

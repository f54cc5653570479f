package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/redisproc"
	"github.com/zasync/zasync/runtime"
)

// scaleEnv sets how many jobs BenchmarkAPIAtScale completes first (default a million); a
// tenth of that many wait in the queue besides, and one in a hundred of the completed ones
// failed.
const scaleEnv = "ZASYNC_SCALE_JOBS"

// BenchmarkAPIAtScale measures what the dashboard's pages ask the API for, on a queue with a
// million completed jobs (ZASYNC_SCALE_JOBS) and a hundred thousand pending, in a
// redis-server of its own: every answer reads windows and counters, never a whole queue.
// Filling the queue takes a minute or two; the measures come after.
//
//	go test ./httpapi -run XXX -bench APIAtScale -benchtime 50x
func BenchmarkAPIAtScale(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv(scaleEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("%s=%q: want a number of jobs, at least 1000", scaleEnv, s)
		}
		n = v
	}
	if err := redisproc.Available(); err != nil {
		b.Skip(err)
	}
	ctx := context.Background()
	srv, err := redisproc.Start(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Kill()
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64})
		b.Cleanup(func() { c.Close() })
		return c
	}
	server, err := runtime.New(runtime.Config{Redis: client(), UUID: "scale-server",
		Queues:       []runtime.QueueConfig{{Name: "big", Agents: []runtime.AgentConfig{{Name: "main", Size: 64}}}},
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	server.Handle("job", func(_ context.Context, c *runtime.Call) (any, error) {
		var i int
		c.Arg(0, &i)
		if i%100 == 0 {
			return nil, errors.New("one in a hundred fails")
		}
		return i, nil
	})
	rt, err := runtime.New(runtime.Config{Redis: client(), UUID: "scale-api"})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	q := rt.Queue("big")

	// Fill: n jobs run to completion, then n/10 put and left pending (paused).
	start := time.Now()
	put := func(from, count int) {
		const batch = 1000
		for lo := from; lo < from+count; lo += batch {
			calls := make([]runtime.Call, min(batch, from+count-lo))
			for k := range calls {
				calls[k] = runtime.NewCall("job", lo+k)
			}
			if _, err := q.PutMany(ctx, calls, runtime.Retry(runtime.NeverRetry)); err != nil {
				b.Fatal(err)
			}
		}
	}
	put(0, n)
	if err := server.Start(ctx); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Minute); ; {
		st, err := q.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Due+st.Held == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the drain did not end within 30 minutes: %+v", st)
		}
		time.Sleep(100 * time.Millisecond) // polling the queue's counts, with a deadline
	}
	if _, err := rt.PauseQueue(ctx, "big"); err != nil {
		b.Fatal(err)
	}
	put(n, n/10)
	b.Logf("filled: %d completed (1%% failed) and %d pending in %s", n, n/10, time.Since(start).Round(time.Second))
	server.Stop(ctx)

	h := httptest.NewServer(New(rt))
	defer h.Close()
	get := func(path string) []byte {
		res, err := http.Get(h.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			b.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
		}
		return body
	}
	var one struct{ Jobs []jobJSON }
	decode(b, get("/v1/jobs?state=succeeded&limit=1"), &one)
	if len(one.Jobs) != 1 {
		b.Fatal("no succeeded job")
	}
	// A page deep in the history: the cursor of the page after 200 pages of 50.
	deep := "/v1/jobs?state=succeeded&limit=50"
	for range 200 {
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		decode(b, get(deep), &page)
		deep = "/v1/jobs?state=succeeded&limit=50&cursor=" + page.NextCursor
	}
	for _, p := range []struct{ name, path string }{
		{"queues", "/v1/queues"},
		{"queue", "/v1/queues/big"},
		{"throughput", "/v1/queues/big/throughput"},
		{"dispatchers", "/v1/dispatchers"},
		{"pending-first-page", "/v1/jobs?state=pending&limit=50"},
		{"succeeded-first-page", "/v1/jobs?state=succeeded&limit=50"},
		{"succeeded-page-201", deep},
		{"failed-first-page", "/v1/jobs?state=failed&limit=50"},
		{"one-job", "/v1/jobs/" + one.Jobs[0].Job},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				get(p.path)
			}
		})
	}
}

func decode(b *testing.B, body []byte, v any) {
	b.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		b.Fatalf("%v in %.200s", err, body)
	}
}

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// costMeter measures what a bench phase costs: round trips of this process's client, and
// Redis's own counters (commands and CPU; they count every client of the server, so they are
// only meaningful on a Redis nobody else is busy with), Go CPU and allocations.
type costMeter struct {
	client  redis.UniversalClient
	trips   atomic.Int64
	samples int64 // taken so far; each sends two INFO commands, not counted
}

func newCostMeter(c redis.UniversalClient) *costMeter {
	m := &costMeter{client: c}
	c.AddHook(m)
	return m
}

func (m *costMeter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (m *costMeter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { m.trips.Add(1); return next(ctx, cmd) }
}

func (m *costMeter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { m.trips.Add(1); return next(ctx, cmds) }
}

// costSample is the meter's counters at one moment.
type costSample struct {
	trips     int64
	commands  int64   // calls summed over INFO commandstats
	redisCPU  float64 // seconds, used_cpu_user + used_cpu_sys
	goCPU     time.Duration
	switches  int64 // voluntary context switches of this process
	mallocs   uint64
	redisRead bool
}

// sample reads the counters; a nil meter samples nothing.
func (m *costMeter) sample(ctx context.Context) costSample {
	if m == nil {
		return costSample{}
	}
	var s costSample
	s.goCPU, s.switches = processCPU()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mallocs = ms.Mallocs
	s.trips = m.trips.Load() - 2*m.samples
	m.samples++
	cmdstats, err1 := m.client.Info(ctx, "commandstats").Result()
	cpu, err2 := m.client.Info(ctx, "cpu").Result()
	if err1 == nil && err2 == nil {
		s.redisRead = true
		for _, line := range strings.Split(cmdstats, "\n") {
			if _, rest, ok := strings.Cut(line, ":calls="); ok {
				n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
				s.commands += n
			}
		}
		for _, line := range strings.Split(cpu, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				f, _ := strconv.ParseFloat(v, 64)
				s.redisCPU += f
			}
		}
	}
	return s
}

// minus renders the cost per job between s0 and s.
func (s costSample) minus(s0 costSample, jobs int) string {
	n := float64(jobs)
	out := fmt.Sprintf("trips=%.2f go_cpu_us=%.1f switches=%.1f allocs=%.0f", float64(s.trips-s0.trips)/n,
		float64((s.goCPU-s0.goCPU).Microseconds())/n, float64(s.switches-s0.switches)/n, float64(s.mallocs-s0.mallocs)/n)
	if s.redisRead && s0.redisRead {
		out += fmt.Sprintf(" redis_cmds=%.2f redis_cpu_us=%.1f", float64(s.commands-s0.commands)/n, (s.redisCPU-s0.redisCPU)*1e6/n)
	}
	return out
}

// startCPUProfile starts a CPU profile into path; the returned func stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeAllocProfile writes the allocations made so far to path.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	return nil
}

// floorRounds is how many bare round trips roundTripFloor times of each kind.
const floorRounds = 200

// roundTripFloor times bare round trips of c, one command each: PING, and an HSET on key of
// a value of size bytes (a call as large as the bench's jobs'). No put made one by one can
// take less than the second: it is one round trip carrying as much. It returns the medians.
func roundTripFloor(ctx context.Context, c redis.UniversalClient, key string, size int) (ping, hset time.Duration, err error) {
	value := strings.Repeat("x", size)
	pings, hsets := make([]time.Duration, floorRounds), make([]time.Duration, floorRounds)
	for i := range floorRounds {
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, 0, fmt.Errorf("round-trip floor: %w", err)
		}
		pings[i] = time.Since(t)
		t = time.Now()
		if err := c.HSet(ctx, key, "call", value).Err(); err != nil {
			return 0, 0, fmt.Errorf("round-trip floor: %w", err)
		}
		hsets[i] = time.Since(t)
	}
	return percentile(pings, 50), percentile(hsets, 50), c.Del(ctx, key).Err()
}

// Command chaosnode is the dispatcher process of the chaos suite (tests/chaos): one zasync
// node serving one queue with the handler "chaos", which records each run in a ledger file
// apart from Redis and returns which run it was, so that the suite can tell a result of the
// job's latest run from any other.
//
// It stops cleanly on SIGTERM or SIGINT; the suite also kills it with SIGKILL.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// Run is what the handler records of each run in the ledger, and returns as its result.
// Event is "start" when the run begins and "done" when it returns its result, which the
// runtime then tries to commit.
type Run struct {
	Event   string `json:"event"`
	ID      string `json:"id"`
	Attempt int64  `json:"attempt"`
	Token   string `json:"token"` // unique to the run
	UUID    string `json:"uuid"`
	PID     int    `json:"pid"`
}

// ledger appends runs to a file, one JSON line each, in a single write: a SIGKILL leaves
// whole lines only.
type ledger struct {
	mu sync.Mutex
	f  *os.File
}

func (l *ledger) record(r Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.f.Write(append(b, '\n'))
	return err
}

var errUsage = errors.New("usage")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaosnode:", err)
		os.Exit(2)
	}
}

func run() error {
	addr := flag.String("redis", "", "Redis host:port")
	cluster := flag.String("cluster", "", "Redis Cluster nodes, host:port,host:port,…")
	prefix := flag.String("prefix", "", "key prefix")
	queue := flag.String("queue", "", "the queue to serve")
	uuid := flag.String("uuid", "", "this dispatcher's UUID")
	size := flag.Int("size", 4, "the agent's size")
	poll := flag.Duration("poll", 100*time.Millisecond, "poll interval")
	ping := flag.Duration("ping", 100*time.Millisecond, "ping interval")
	death := flag.Duration("death", time.Second, "ping death interval")
	grace := flag.Duration("grace", 2*time.Second, "shutdown grace")
	ledgerPath := flag.String("ledger", "", "the file runs are recorded in")
	flag.Parse()
	if (*addr == "") == (*cluster == "") || *prefix == "" || *queue == "" || *uuid == "" || *ledgerPath == "" {
		flag.Usage()
		return fmt.Errorf("%w: give --redis or --cluster, and --prefix, --queue, --uuid and --ledger", errUsage)
	}

	f, err := os.OpenFile(*ledgerPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	book := &ledger{f: f}

	// The clients `zasync serve` makes (cmd/zasync/connect.go): go-redis's defaults, RESP2.
	var rdb redis.UniversalClient
	if *cluster != "" {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(*cluster, ","), Protocol: 2})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: *addr, Protocol: 2})
	}
	defer rdb.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := runtime.New(runtime.Config{
		Redis: rdb, Prefix: *prefix, UUID: *uuid, Logger: logger,
		Queues:       []runtime.QueueConfig{{Name: *queue, Agents: []runtime.AgentConfig{{Name: "main", Size: *size}}}},
		PollInterval: *poll, PingInterval: *ping, PingDeathInterval: *death, ShutdownGrace: *grace,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := rt.Handle("chaos", handler(book, *uuid)); err != nil {
		return err
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	ctx := context.Background()
	// Start may meet a Redis that is down or frozen: the suite restarts nodes while it
	// injects faults. Keep trying, as an operator's supervisor would restart the process.
	for {
		err := rt.Start(ctx)
		if err == nil {
			break
		}
		logger.Error("start failed; trying again", "err", err)
		select {
		case <-signals:
			return nil
		case <-time.After(*poll):
		}
	}
	logger.Info("chaosnode started", "uuid", *uuid, "pid", os.Getpid())
	<-signals
	sctx, cancel := context.WithTimeout(ctx, *grace+30*time.Second)
	defer cancel()
	if err := rt.Stop(sctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	logger.Info("chaosnode stopped", "uuid", *uuid)
	return nil
}

// handler is "chaos MILLISECONDS": it records its start in the ledger, waits that long (less if
// its run is cancelled), records that it is done, and returns the run.
func handler(book *ledger, uuid string) runtime.HandlerFunc {
	return func(ctx context.Context, c *runtime.Call) (any, error) {
		var ms int64
		if err := c.Arg(0, &ms); err != nil {
			return nil, err
		}
		job, ok := runtime.JobFrom(ctx)
		if !ok {
			return nil, errors.New("chaos: not run as a job")
		}
		attempt, _ := runtime.Attempt(ctx)
		tok := make([]byte, 8)
		rand.Read(tok)
		run := Run{Event: "start", ID: job.ID(), Attempt: attempt, Token: hex.EncodeToString(tok), UUID: uuid, PID: os.Getpid()}
		if err := book.record(run); err != nil {
			return nil, err
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		run.Event = "done"
		if err := book.record(run); err != nil {
			return nil, err
		}
		return run, nil
	}
}

package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// failoverRecovery is how long after a replica's promotion pings, claims and commits may
// still fail. Without a topology refresh on connection errors they failed for 28 to 51
// seconds; with it they recover within a second or so, and this leaves room for a busy
// machine.
const failoverRecovery = 10 * time.Second

// A Redis Cluster master is killed; once its replica has taken over, the store's pings,
// claims and commits of a queue in that master's slots succeed again within
// failoverRecovery. The test starts its own cluster (three masters, three replicas, a
// node timeout of one second) when ZASYNC_TEST_CLUSTER_FAILOVER=1 and redis-server and
// redis-cli are installed.
func TestClusterFailover(t *testing.T) {
	if os.Getenv("ZASYNC_TEST_CLUSTER_FAILOVER") != "1" {
		t.Skip("ZASYNC_TEST_CLUSTER_FAILOVER is not 1: no Redis Cluster of the test's own to kill a master of")
	}
	for _, cmd := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("%s is not installed: no Redis Cluster to start", cmd)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, 6)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() {
		rdb.Close()
		// go-redis probes a dead node's address from a goroutine that sees its pool closed
		// only between probes, a second apart: wait for it, for goleak.
		deadline := time.Now().Add(10 * time.Second)
		for goroutinesIn("pool.(*ConnPool).tryDial") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // polling the goroutines, with a deadline
		}
	})
	s := newStore(t, rdb, Options{})

	const q = "failover"
	cfg := persistence.DispatcherConfig{PingInterval: 100 * time.Millisecond, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 4}}}
	op := func(timeout time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, timeout)
	}
	if err := s.Register(ctx, q, "d1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(ctx, q, "d1"); err != nil {
		t.Fatal(err)
	}
	// hot pings, puts a job, claims it and commits it (claiming again in the same round trip):
	// the calls of a node's hot path.
	hot := func(ctx context.Context) error {
		if _, err := s.Ping(ctx, q, "d1"); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		if _, err := s.Put(ctx, q, persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		jobs, err := s.Claim(ctx, persistence.ClaimParams{Queue: q, Dispatcher: "d1", Agent: "main", Size: 4, Start: true})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		commits := make([]persistence.Commit, len(jobs))
		for i, j := range jobs {
			commits[i] = persistence.Commit{Fence: j.Fence(), Known: j, Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}}
		}
		claim := persistence.ClaimParams{Queue: q, Dispatcher: "d1", Agent: "main", Size: 4, Start: true}
		_, errs, claimed, claimErrs := s.Batch(ctx, commits, []persistence.ClaimParams{claim})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := claimErrs[0]; err != nil {
			return fmt.Errorf("claim in a batch: %w", err)
		}
		for _, j := range claimed[0] {
			if _, err := s.Commit(ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
		return nil
	}
	octx, ocancel := op(10 * time.Second)
	err := hot(octx)
	ocancel()
	if err != nil {
		t.Fatalf("before the failover: %v", err)
	}

	// Kill the master of the queue's slot, and wait for its replica to take over.
	slot := clusterSlot(q)
	master := slotOwner(t, ctx, nodes[0], slot)
	if master.addr == nodes[0].addr {
		master = slotOwner(t, ctx, nodes[1], slot)
	}
	var victim, witness *redisProc
	for _, n := range nodes {
		switch {
		case n.addr == master.addr:
			victim = n
		case witness == nil:
			witness = n
		}
	}
	// What was written is on the replica first: replication is asynchronous, and a failover
	// loses what had not reached it (Redis's rule, not the store's).
	mc := redis.NewClient(&redis.Options{Addr: victim.addr})
	for {
		info, err := mc.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if replicaCaughtUp(info) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the replica of %s never caught up: %s", victim.addr, info)
		}
		time.Sleep(20 * time.Millisecond) // polling the master, with the test's deadline
	}
	mc.Close()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	killed := time.Now()
	// Meanwhile the store is used as a node would: a ping every 100 ms.
	pinging := make(chan struct{})
	pinger := make(chan struct{})
	go func() {
		defer close(pinger)
		for {
			select {
			case <-pinging:
				return
			case <-time.After(100 * time.Millisecond):
			}
			pctx, pcancel := op(time.Second)
			s.Ping(pctx, q, "d1")
			pcancel()
		}
	}()
	defer func() {
		select {
		case <-pinging:
		default:
			close(pinging)
		}
		<-pinger
	}()
	for {
		if m := slotOwner(t, ctx, witness, slot); m.addr != victim.addr && m.addr != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the replica never took over")
		}
		time.Sleep(50 * time.Millisecond) // polling the cluster's view, with the test's deadline
	}
	promoted := time.Now()
	t.Logf("master %s killed; its replica took over %v later", victim.addr, promoted.Sub(killed).Round(time.Millisecond))

	// Each of the hot path's calls recovers within failoverRecovery of the promotion.
	for {
		octx, ocancel := op(2 * time.Second)
		err := hot(octx)
		ocancel()
		if err == nil {
			break
		}
		if time.Since(promoted) > failoverRecovery {
			t.Fatalf("the store still fails %v after the replica took over: %v", time.Since(promoted).Round(time.Millisecond), err)
		}
		time.Sleep(20 * time.Millisecond) // polling the store, with a deadline
	}
	t.Logf("pings, puts, claims and commits succeed again %v after the promotion", time.Since(promoted).Round(time.Millisecond))
}

// replicaCaughtUp reports whether a master's INFO replication shows a replica that has all
// of its writes.
func replicaCaughtUp(info string) bool {
	var master int64 = -1
	var replica int64 = -2
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			master, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "slave0:"); ok {
			for _, kv := range strings.Split(v, ",") {
				if o, ok := strings.CutPrefix(kv, "offset="); ok {
					replica, _ = strconv.ParseInt(o, 10, 64)
				}
			}
		}
	}
	return replica >= master
}

// goroutinesIn reports whether a goroutine runs a function whose name contains fn.
func goroutinesIn(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// redisProc is a redis-server the test started.
type redisProc struct {
	addr string
	cmd  *exec.Cmd
}

// startCluster starts n cluster-enabled redis-servers on free loopback ports and makes them
// a cluster with one replica per master; they are killed when the test ends.
func startCluster(t *testing.T, ctx context.Context, n int) []*redisProc {
	t.Helper()
	dir := t.TempDir()
	var procs []*redisProc
	t.Cleanup(func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
	})
	for range n {
		port := freeClusterPort(t)
		conf := filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf")
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
			"--appendonly", "no", "--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", conf,
			"--cluster-node-timeout", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, &redisProc{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd})
	}
	args := []string{"--cluster", "create"}
	for _, p := range procs {
		c := redis.NewClient(&redis.Options{Addr: p.addr})
		for c.Ping(ctx).Err() != nil {
			if ctx.Err() != nil {
				t.Fatalf("redis-server at %s never answered", p.addr)
			}
			time.Sleep(20 * time.Millisecond) // polling the server, with the test's deadline
		}
		c.Close()
		args = append(args, p.addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node sees the cluster ok, and every replica is in sync with its master.
	for _, p := range procs {
		c := redis.NewClient(&redis.Options{Addr: p.addr})
		for {
			info, _ := c.ClusterInfo(ctx).Result()
			repl, _ := c.Info(ctx, "replication").Result()
			if strings.Contains(info, "cluster_state:ok") &&
				(strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("node %s never got ready: %s %s", p.addr, info, repl)
			}
			time.Sleep(50 * time.Millisecond) // polling the node, with the test's deadline
		}
		c.Close()
	}
	return procs
}

// freeClusterPort returns a free loopback port whose cluster bus port (+10000) is free too.
func freeClusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// slotOwner returns the master that serves slot in the view of node n.
func slotOwner(t *testing.T, ctx context.Context, n *redisProc, slot int) clusterNode {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: n.addr})
	defer c.Close()
	ranges, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return clusterNode{}
	}
	for _, r := range ranges {
		if r.Start <= slot && slot <= r.End {
			return clusterNode{id: r.Nodes[0].ID, addr: r.Nodes[0].Addr}
		}
	}
	return clusterNode{}
}

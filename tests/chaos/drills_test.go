package chaos

import (
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/redisproc"
	"github.com/zasync/zasync/internal/tcpproxy"
)

// drill runs a drill's rounds, each a subtest, stopping after the first that fails unless
// ZASYNC_CHAOS_KEEP_GOING is set.
func drill(t *testing.T, fn func(t *testing.T, n int, s settings)) {
	s := settingsFor(t)
	failed := 0
	for i := range s.rounds {
		if t.Run("round"+strconv.Itoa(i+1), func(t *testing.T) { fn(t, i+1, s) }) {
			continue
		}
		failed++
		if !s.keepGoing {
			t.Logf("stopped after the first failing round (%s=1 runs every round)", envKeepGoing)
			return
		}
	}
	if failed > 0 {
		t.Logf("%d of %d rounds failed", failed, s.rounds)
	}
}

// jobs scales a drill's job count for the soak variant.
func (s settings) jobs(n int) int {
	if s.soak {
		return 3 * n
	}
	return n
}

// jitter returns a duration from d to 1.5 d, so that rounds hit different moments.
func jitter(d time.Duration) time.Duration { return d + time.Duration(mrand.Int64N(int64(d/2)+1)) }

// faults is how many times a round of a single-node drill applies its fault, at different
// points of the drain: each is a fresh chance to hit a race, for little more time than one.
const faults = 2

// faultPoint is how many jobs must be completed before the round's k-th fault (from 0).
func (s settings) faultPoint(k int) int { return s.jobs(20 + 40*k) }

// Redis is killed with SIGKILL in the middle of a drain and restarted from its append-only
// file (fsync at every write, so nothing it acknowledged is lost), twice a round. Replies in
// flight are lost: a claim or a commit may have happened with its client seeing EOF.
func TestChaosRedisKilled(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "redis-killed", n, false, "--appendonly", "yes", "--appendfsync", "always")
		a := r.startNode("killed-a", r.redisArgs())
		b := r.startNode("killed-b", r.redisArgs())
		r.waitActivated(a, b)
		r.put(s.jobs(100))
		for k := range faults {
			if !r.reach(s.faultPoint(k)) {
				break
			}
			down := jitter(deathInterval)
			r.server.Kill()
			time.Sleep(down) // Redis stays down this long: the fault itself, not a synchronisation
			if err := r.server.Restart(r.ctx); err != nil {
				t.Fatal(err)
			}
			r.note("Redis killed with jobs running, restarted from its AOF %s later", down.Round(time.Millisecond))
		}
		r.put(s.jobs(20))
		r.finish()
	})
}

// Redis stops answering for longer than the death interval and than the clients' read
// timeout, under load, twice a round: by SIGSTOP, then by DEBUG SLEEP. Every dispatcher
// misses its pings; commands sent during the freeze run when it ends, after their clients
// gave up on them.
func TestChaosRedisFrozen(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "redis-frozen", n, false, "--enable-debug-command", "yes")
		a := r.startNode("frozen-a", r.redisArgs())
		b := r.startNode("frozen-b", r.redisArgs())
		r.waitActivated(a, b)
		r.put(s.jobs(100))
		for k := range faults {
			if !r.reach(s.faultPoint(k)) {
				break
			}
			freeze := jitter(4 * time.Second)
			if k%2 == 0 {
				if err := r.server.Freeze(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(freeze) // Redis stays frozen this long: the fault itself
				if err := r.server.Thaw(); err != nil {
					t.Fatal(err)
				}
				r.note("Redis stopped (SIGSTOP) for %s", freeze.Round(time.Millisecond))
			} else {
				secs := strconv.FormatFloat(freeze.Seconds(), 'f', 3, 64)
				if _, err := redisproc.Command(r.server.Addr(), freeze+10*time.Second, "DEBUG", "SLEEP", secs); err != nil {
					t.Fatalf("DEBUG SLEEP %s: %v", secs, err)
				}
				r.note("Redis asleep (DEBUG SLEEP) for %ss", secs)
			}
		}
		r.put(s.jobs(20))
		r.finish()
	})
}

// One dispatcher reaches Redis through a proxy the test owns; its sibling reaches it
// directly. With jobs running, the proxy cuts every connection and refuses new ones until the
// sibling has declared the cut-off dispatcher dead and a while longer, while new jobs keep
// coming; then it heals, and the dispatcher that was cut off finds its jobs reassigned. Twice
// a round, the second time once it is back at work.
func TestChaosPartition(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "partition", n, false)
		proxy, err := tcpproxy.Start(r.server.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { proxy.Close() })
		victim := r.startNode("cut-off", []string{"--redis", proxy.Addr()})
		sibling := r.startNode("sibling", r.redisArgs())
		r.waitActivated(victim, sibling)
		r.put(s.jobs(100))
		for k := range faults {
			if !r.reach(s.faultPoint(k)) {
				break
			}
			if k > 0 {
				// Work for both, so that a healed dispatcher that claims nothing is not
				// mistaken for a drained queue.
				r.put(s.jobs(40))
				if !r.await(completeWithin, "the healed dispatcher claims a job again", func() bool { return r.holds(victim) }) {
					r.t.Errorf("%s: the dispatcher cut off and healed claims nothing:\n%s\n%s", r.name, victim.summary(), victim.logTail(15))
					break
				}
			}
			r.waitHeld(victim)
			stop := r.trickle()
			proxy.Cut()
			cut := time.Now()
			r.eventually(30*time.Second, "the sibling declares the cut-off dispatcher dead", func() bool {
				d, err := r.store.Dispatcher(r.ctx, r.queue, victim.uuid)
				return err == nil && !d.IsActivated()
			})
			time.Sleep(jitter(deathInterval / 2)) // cut off a while longer: the fault itself
			proxy.Heal()
			stop()
			r.note("dispatcher cut off for %s (%d connections severed or refused so far)", time.Since(cut).Round(time.Millisecond), proxy.Severed())
		}
		r.put(s.jobs(10))
		r.finish()
		r.t.Logf("%s: the cut-off dispatcher logged %d reactivations (CRITICAL) and %d refused commits",
			r.name, len(victim.logLines("not activated prior to ping")), len(victim.logLines("was reassigned")))
	})
}

// One dispatcher is killed with SIGKILL again and again, each time once its new process has
// started a run (plus up to 300 ms, so that kills land at different moments), and restarted
// at once with the same UUID, which must wait until its old record is dead before it takes
// over; a sibling runs all along and jobs keep coming.
func TestChaosDispatcherKillLoop(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "kill-loop", n, false)
		victim := r.startNode("killed", r.redisArgs())
		sibling := r.startNode("survivor", r.redisArgs())
		r.waitActivated(victim, sibling)
		r.put(s.jobs(40))
		stop := r.trickle()
		kills := 4
		if s.soak {
			kills = 12
		}
		killed := 0
		for range kills {
			if !r.await(completeWithin, "the restarted dispatcher runs a job", victim.ranSince) {
				break
			}
			time.Sleep(time.Duration(mrand.IntN(300)) * time.Millisecond) // where the kill lands: the fault itself
			victim.kill()
			victim.start()
			killed++
		}
		stop()
		r.note("dispatcher killed %d times and restarted with its UUID", killed)
		r.put(s.jobs(10))
		r.finish()
	})
}

// A Redis Cluster of three masters and three replicas (cluster-node-timeout 1 s): with jobs
// running, the master serving the queue's slot is killed, and its replica takes over. Once
// the drain has gone on past the next fault point, the killed node is restarted (it comes
// back as the new master's replica), and the new master is killed in turn; the last one
// killed stays dead until the round ends.
func TestChaosClusterFailover(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "cluster-failover", n, true)
		a := r.startNode("failover-a", r.redisArgs())
		b := r.startNode("failover-b", r.redisArgs())
		r.waitActivated(a, b)
		r.put(s.jobs(100))
		slot, err := r.cluster.Slot("{" + r.queue + "}")
		if err != nil {
			t.Fatal(err)
		}
		var dead *redisproc.Server
		for k := range faults {
			if !r.reach(s.faultPoint(k)) {
				break
			}
			// The node killed last comes back only now, once the drain went on without it:
			// a node answering at the dead address again would redirect the clients to the
			// new master and hide a client that never looks for it.
			if dead != nil {
				if err := dead.Restart(r.ctx); err != nil {
					t.Fatal(err)
				}
				if err := r.cluster.WaitHealthy(r.ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
			master, err := r.cluster.MasterOf(slot)
			if err != nil {
				t.Fatal(err)
			}
			master.Kill()
			dead = master
			killed := time.Now()
			if err := r.cluster.WaitHealthy(r.ctx, []*redisproc.Server{master}); err != nil {
				t.Fatal(err)
			}
			r.note("master %s of slot %d killed; the cluster was healthy again %s later",
				master.Addr(), slot, time.Since(killed).Round(time.Millisecond))
		}
		r.put(s.jobs(20))
		r.finish()
	})
}

// A Redis Cluster of three masters and three replicas: with jobs running and new ones
// coming, the queue's slot is migrated to another master and back, a few keys at a time, as
// `redis-cli --cluster reshard` does (without --cluster-replace). A key written on the
// source after it moved ("Target key exists") fails the round; the migration is then finished
// with REPLACE so that the jobs can still be counted.
func TestChaosClusterMigration(t *testing.T) {
	drill(t, func(t *testing.T, n int, s settings) {
		r := newRound(t, "cluster-migration", n, true)
		a := r.startNode("migration-a", r.redisArgs())
		b := r.startNode("migration-b", r.redisArgs())
		r.waitActivated(a, b)
		r.put(s.jobs(80))
		if !r.reach(s.jobs(15)) {
			r.finish()
			return
		}
		slot, err := r.cluster.Slot("{" + r.queue + "}")
		if err != nil {
			t.Fatal(err)
		}
		home, err := r.cluster.MasterOf(slot)
		if err != nil {
			t.Fatal(err)
		}
		masters, err := r.cluster.Masters()
		if err != nil {
			t.Fatal(err)
		}
		var away *redisproc.Server
		for _, m := range masters {
			if m != home {
				away = m
				break
			}
		}
		if away == nil {
			t.Fatalf("no master other than %s in %v", home.Addr(), r.cluster.Addrs())
		}
		stop := r.trickle()
		for _, leg := range [][2]*redisproc.Server{{home, away}, {away, home}} {
			src, dst := leg[0], leg[1]
			moved := 0
			err := r.cluster.MigrateSlot(r.ctx, slot, src, dst, 5, false, func(k int) { moved = k })
			if errors.Is(err, redisproc.ErrBusyKey) {
				t.Errorf("%s: migrating slot %d from %s to %s: %v", r.name, slot, src.Addr(), dst.Addr(), err)
				r.note("migration from %s to %s stopped: %v; finished with REPLACE", src.Addr(), dst.Addr(), err)
				err = r.cluster.MigrateSlot(r.ctx, slot, src, dst, 5, true, func(k int) { moved += k })
			}
			if err != nil {
				stop()
				t.Fatalf("migrating slot %d from %s to %s: %v", slot, src.Addr(), dst.Addr(), err)
			}
			r.note("slot %d migrated from %s to %s under load (%d keys)", slot, src.Addr(), dst.Addr(), moved)
		}
		stop()
		r.put(s.jobs(10))
		r.finish()
	})
}

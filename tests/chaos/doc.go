// Package chaos is zasync's chaos suite: drills that put jobs, run dispatcher processes
// (chaosnode) against redis-server processes the tests start on loopback, and do to them
// what goes wrong in production: Redis killed and restarted from its append-only file, Redis
// frozen past the death interval, a dispatcher cut off from Redis by a proxy, a dispatcher
// killed again and again and restarted with its UUID, a Redis Cluster master killed, and a
// queue's slot migrated while it is used. Each round counts the jobs put, completed, failed,
// lost (not completed by a deadline) and doubled (two committed results, or a result not
// from the job's latest run), and fails unless none is lost or doubled. A drill of its own
// runs three `zasync serve` processes declaring one every-second periodic job for a minute,
// kills one midway, and checks that every tick was put exactly once (periodic_test.go).
//
// It takes minutes, so it runs only when ZASYNC_CHAOS=1 (or ZASYNC_CHAOS_SOAK=1, for more
// rounds of more jobs); ZASYNC_CHAOS_ROUNDS sets the rounds per drill and
// ZASYNC_CHAOS_KEEP_GOING=1 runs them all even after one fails. It needs redis-server and
// redis-cli in PATH.
package chaos

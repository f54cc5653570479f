// Package redisstore is the persistence.Store over Redis, through a go-redis
// UniversalClient: a single node, Sentinel or Cluster, and miniredis in tests.
//
// Every key of a queue carries the hash tag {queue} (keys.go documents each key), so every
// transaction touches one cluster slot. Every read-check-write is an optimistic transaction:
// WATCH, read, check, MULTI … EXEC; a transaction that loses a race is re-read and re-checked
// (Options.MaxTxRetries times) before persistence.ErrConflict. Transitions of a claimed job
// are fenced: they check the job's owner and attempt in the same transaction, and a process
// that lost the job gets persistence.ErrReassigned and writes nothing.
//
// Round trips, on a single node: a put is one; a claim of all of an agent's free slots is
// three; each fenced transition (start, commit, complete, …) is two. The round-trip budget
// test keeps these numbers honest.
package redisstore

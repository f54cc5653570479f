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
// The hot path is the exception: a claim without a filter and a commit run as Lua scripts
// (scripts.go), atomic as a transaction that never loses its race, and taking only the common
// case; anything else they leave, unwritten, to the transaction, which stays the reference.
// Batch sends a node's commits and claims in one pipeline. A script touches only keys it is
// given (KEYS), so that Redis Cluster can route it and refuse it whole while its slot
// migrates; a claim declares the jobs it expects at the head of the queue, and runs again at
// once when the head has others (see claimScript). In a queue of large calls, a claim reads
// the calls of the jobs it expects to take after its script, in the same pipeline, since
// Redis's Lua hashes every byte of every string a script makes (see claim.call).
//
// Round trips, on a single node: a put is one, and so are many (PutMany, PutEach; two when
// some name quotas, which are checked first; a put with a unique key is one, two when it finds
// the key held, to declare the holder, see unique.go); a claim of all of an agent's free slots is one
// (two when the head of the queue holds jobs it did not expect, put by another process that
// did not wake it, or when jobs of a priority this store did not know in use wait, up to three
// when both; three when it needs the transaction: a filter, quotas, an expired job); a
// commit, or many,
// is one; a batch of commits and claims is one; each other fenced transition (start,
// complete, …) is two. The round-trip budget test keeps these numbers honest.
package redisstore

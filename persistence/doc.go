// Package persistence holds zasync's durable model and the Store interface every actor uses.
//
// It defines what a job is (a Call, its Status and the rules for changing it, its Failure,
// its retry policy and counters), what a dispatcher record is, the sentinel and typed errors
// of the system, and the Store that keeps all of it. The Redis implementation lives in
// persistence/redisstore; persistence/storetest is the conformance suite any Store must pass.
//
// Nothing here knows about actors or go-redis: imports point from the runtime down to this
// package, never back.
package persistence

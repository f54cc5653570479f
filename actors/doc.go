// Package actors holds zasync's actors on protoactor-go: queue, dispatcher, agent, job and
// supervisor, one file each (see DESIGN.md §3). Actors talk to persistence.Store, never to
// go-redis, and exchange the messages of package messages.
package actors

package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// A record's unique field reads as a key or as an error, never a panic; a key read is written
// back as it read; and a job whose field cannot be read is read in part, the field named.
func FuzzDecodeStoredUnique(f *testing.F) {
	f.Add(`{"key":"k"}`)
	f.Add(`{"key":"k","states":"pa","keep":5000000}`)
	f.Add(`{"key":"","states":"x"}`)
	f.Add(`{"key":"k","keep":-1}`)
	f.Add(`{"key":"k","keep":9223372036854775807}`)
	f.Add(`{"key":"\ud800"}`)
	f.Add(`[1]`)
	f.Add(`{nope`)
	f.Fuzz(func(t *testing.T, v string) {
		u, err := decodeUnique(v)
		if err == nil && v != "" {
			if u == nil {
				t.Fatalf("%q read as no key and no error", v)
			}
			again, err := decodeUnique(encodeUnique(u))
			if err != nil || !reflect.DeepEqual(again, u) {
				t.Fatalf("written back and read again: %+v %v, want %+v", again, err, u)
			}
		}
		j, _, jerr := decodeJob(persistence.Ref{Queue: "q", ID: "id"}, map[string]string{fStatus: "pending", fUnique: v})
		switch {
		case err == nil && jerr != nil:
			t.Fatalf("job with a readable key: %v", jerr)
		case err != nil && (jerr == nil || j.Corrupt == nil || !slices.Contains(j.Corrupt.Fields, fUnique)):
			t.Fatalf("job with an unreadable key: %v, Corrupt %v", jerr, j.Corrupt)
		}
	})
}

// The committer's Batch releases the keys of the jobs it completes, with the runs known (read
// lean without a key) and through the script's fallback for jobs with keys; a keep period is
// capped at the retention.
func TestUniqueBatchAndKeepCap(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w := newTwin(t, b.client(t), true, Options{Retention: time.Hour})
			w.activate("d1", time.Minute)
			keys := []string{"a", "b", "c"}
			for _, k := range keys {
				w.put(persistence.JobSpec{Call: persistence.Call{Handler: "h"}, Unique: &persistence.Unique{Key: k, Keep: 10 * time.Hour}})
			}
			w.put(persistence.JobSpec{Call: persistence.Call{Handler: "plain"}})
			claimed := w.claim(persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 10, Start: true})
			if len(claimed) != 4 {
				t.Fatalf("claimed %d jobs, want 4", len(claimed))
			}
			var commits []persistence.Commit
			for _, j := range claimed {
				commits = append(commits, persistence.Commit{Fence: j.Fence(), Known: j,
					Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}})
			}
			jobs, errs, _, _ := w.s.Batch(ctx, commits, nil)
			for i, err := range errs {
				if err != nil || jobs[i].Status != persistence.StatusCompleted {
					t.Fatalf("Batch commit %d: %v", i, err)
				}
			}
			for i, k := range keys {
				key := w.s.k.unique("q", k)
				id, err := w.rdb.Get(ctx, key).Result()
				ttl := w.rdb.PTTL(ctx, key).Val()
				if err != nil || id != claimed[i].ID || ttl <= 0 || ttl > time.Hour {
					t.Fatalf("key %s after completion: %q %v, TTL %s; want its job's, for at most the retention (1h)", k, id, err, ttl)
				}
			}
		})
	}
}

// A put without a key never reads or writes one: its round trips are the plain put's, and
// a unique put's bad key is refused before any.
func TestUniqueBadKeyWritesNothing(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := newStore(t, b.client(t), Options{})
			_, err := s.Put(ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}, Unique: &persistence.Unique{Key: ""}})
			if !errors.Is(err, persistence.ErrInvalid) {
				t.Fatalf("empty key: %v, want ErrInvalid", err)
			}
			for _, k := range []string{s.k.queues(), s.k.pending("q")} { // one at a time: a cluster has them in two slots
				if n, err := s.rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
					t.Fatalf("a refused put wrote %s (%d, %v)", k, n, err)
				}
			}
			if _, err := s.UniqueHolder(ctx, "q", ""); !errors.Is(err, persistence.ErrInvalid) {
				t.Fatalf("UniqueHolder of an empty key: %v, want ErrInvalid", err)
			}
		})
	}
}

// A unique put costs one round trip when its key is free, two when it finds it held (the
// script names the holder, then runs with it declared); a plain put stays at one.
func TestUniqueRoundTrips(t *testing.T) {
	f := newFixture(t)
	trips := &tripCounter{}
	f.rdb.AddHook(trips)
	spec := func(key string) persistence.JobSpec {
		return persistence.JobSpec{Call: persistence.Call{Handler: "h"}, Unique: &persistence.Unique{Key: key}}
	}
	if _, err := f.s.Put(f.ctx, "q", spec("warm")); err != nil { // the first put of a queue records its name
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec persistence.JobSpec
		want int64
	}{
		{"free key", spec("k"), 1},
		{"held key", spec("k"), 2},
		{"no key", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}, 1},
	} {
		before := trips.n.Load()
		if _, err := f.s.Put(f.ctx, "q", tc.spec); err != nil {
			t.Fatal(err)
		}
		if got := trips.n.Load() - before; got != tc.want {
			t.Errorf("%s: %d round trips, want %d", tc.name, got, tc.want)
		}
	}
}

package persistence

import (
	"strings"
	"time"
	"unicode/utf8"
)

// MaxUniqueKey is the longest unique key, in bytes: a key is part of a Redis key and of the
// job record, read by every put that names it.
const MaxUniqueKey = 512

// UniqueStates are the states in which the job holding a unique key keeps it from being put
// again: a set of bits.
type UniqueStates uint8

// The states a unique key may be held in. A job that completes holds its key for
// Unique.Keep more when that is positive.
const (
	// UniquePending: PENDING and due, waiting to be claimed.
	UniquePending UniqueStates = 1 << iota
	// UniqueScheduled: PENDING with a begin_after still ahead.
	UniqueScheduled
	// UniqueActive: claimed and not completed (ASSIGNED, ACTIVE or CALLBACKS).
	UniqueActive
)

// DefaultUniqueStates are the states of a Unique whose States is zero.
const DefaultUniqueStates = UniquePending | UniqueScheduled | UniqueActive

// allUniqueStates are the bits a UniqueStates may have.
const allUniqueStates = DefaultUniqueStates

// uniqueLetters name the states in stored records and scripts, in bit order.
const uniqueLetters = "psa"

// String renders the states as letters: p pending, s scheduled, a active.
func (s UniqueStates) String() string {
	var b strings.Builder
	for i := range len(uniqueLetters) {
		if s&(1<<i) != 0 {
			b.WriteByte(uniqueLetters[i])
		}
	}
	return b.String()
}

// ParseUniqueStates reads the letters String writes, in any order; "" is no state.
func ParseUniqueStates(v string) (UniqueStates, error) {
	var s UniqueStates
	for _, r := range v {
		i := strings.IndexRune(uniqueLetters, r)
		if i < 0 {
			return 0, invalidf("unique states %q: want letters of %q (pending, scheduled, active)", v, uniqueLetters)
		}
		s |= 1 << i
	}
	return s, nil
}

// Unique makes a put create its job only if no job of the queue holds Key (see JobSpec.Unique).
// The put that creates the job takes the key; the job holds it while it is in one of States,
// and for Keep after it completes; the key is released in the transaction that moves the job
// out of them (its completion, a cancel, a fail before it started, a delete, a pull back to
// NEW), and only while it still names that job.
type Unique struct {
	// Key names the job in its queue: any UTF-8 text of 1 to MaxUniqueKey bytes.
	Key string `json:"key"`
	// States are those in which the job holds the key; zero means DefaultUniqueStates. A put
	// that finds the key named by a job in another state creates its job, which takes the key.
	States UniqueStates `json:"-"`
	// Keep holds the key for this long after the job completes (by its commit, success or
	// failure), capped at the store's retention: a put within it returns the completed job.
	// 0 releases it at completion; negative is invalid.
	Keep time.Duration `json:"-"`
	// Debounce is for the put only, not stored: when the key's job is PENDING and has never
	// been claimed, this put replaces that job's call and begin_after with its own (the
	// newest put wins) instead of leaving it as it is. A key given twice in one call makes
	// the later spec a plain duplicate of the earlier.
	Debounce bool `json:"-"`
}

// StatesOrDefault returns States, or DefaultUniqueStates when it is zero.
func (u *Unique) StatesOrDefault() UniqueStates {
	if u.States == 0 {
		return DefaultUniqueStates
	}
	return u.States
}

// Validate checks the key, the states and Keep.
func (u *Unique) Validate() error {
	switch {
	case u.Key == "":
		return invalidf("empty unique key")
	case len(u.Key) > MaxUniqueKey:
		return invalidf("unique key of %d bytes: at most %d", len(u.Key), MaxUniqueKey)
	case !utf8.ValidString(u.Key):
		return invalidf("unique key %q is not UTF-8", u.Key)
	case u.States&^allUniqueStates != 0:
		return invalidf("unique states %#x: unknown bits", uint8(u.States))
	case u.Keep < 0:
		return invalidf("negative unique keep period %s", u.Keep)
	}
	return nil
}

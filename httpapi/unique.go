package httpapi

import (
	"time"

	"github.com/zasync/zasync/runtime"
)

// uniqueBody is the part of a put's body that asks for a unique key (runtime.Unique).
type uniqueBody struct {
	// UniqueKey, when given, puts the job only if no job of the queue holds it.
	UniqueKey *string `json:"unique_key"`
	// UniqueStates are those in which the job holds its key: pending, scheduled, active
	// (none given: all three).
	UniqueStates []string `json:"unique_states"`
	// UniqueCompletedMS holds the key this long after the job completes too.
	UniqueCompletedMS *int64 `json:"unique_completed_ms"`
	// Debounce gives a pending job that holds the key this put's call and begin_after.
	Debounce bool `json:"debounce"`
}

// uniqueOption is the body's Unique option, none when it names no key.
func (b *uniqueBody) uniqueOption(dur func(name string, v *int64) (time.Duration, error)) (runtime.PutOption, error) {
	if b.UniqueKey == nil {
		if len(b.UniqueStates) > 0 || b.UniqueCompletedMS != nil || b.Debounce {
			return nil, badRequest("unique_states, unique_completed_ms and debounce need a unique_key")
		}
		return nil, nil
	}
	opts := runtime.UniqueOpts{Debounce: b.Debounce}
	for _, s := range b.UniqueStates {
		st, ok := runtime.ParseUniqueState(s)
		if !ok {
			return nil, badRequest("unique_states: %q is not pending, scheduled or active", s)
		}
		opts.States |= st
	}
	if b.UniqueCompletedMS != nil {
		d, err := dur("unique_completed_ms", b.UniqueCompletedMS)
		if err != nil {
			return nil, err
		}
		opts.CompletedWithin = d
	}
	return runtime.Unique(*b.UniqueKey, opts), nil
}

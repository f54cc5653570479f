package persistence

import (
	"errors"
	"reflect"
	"sync"
)

// A program's own error kinds: a sentinel registered here keeps its identity through storage.
// A failure stored from an error that matched it (errors.Is) lists its name, and errors.Is
// matches the failure read back against it, in any process that registered it too.

// MaxErrorKinds is how many errors a program may register.
const MaxErrorKinds = 1000

var errorKinds struct {
	sync.RWMutex
	byErr  map[error]string
	byName map[string]error
	order  []error
}

// RegisterError registers err under its text, which is the name stored with failures that
// match it: every process must register the same errors with the same texts. Registering an
// error again does nothing. A nil error, an empty text, an error value that cannot be a map key
// (not comparable, so not a sentinel), another error with the same text, or more than
// MaxErrorKinds errors give ErrInvalid.
func RegisterError(err error) error {
	if err == nil {
		return invalidf("register error: nil error")
	}
	name := err.Error()
	switch {
	case name == "":
		return invalidf("register error: %T has an empty text, which names it in storage", err)
	case !reflect.TypeOf(err).Comparable():
		return invalidf("register error %q: a %T cannot be compared, so it is not a sentinel", name, err)
	}
	errorKinds.Lock()
	defer errorKinds.Unlock()
	if errorKinds.byErr == nil {
		errorKinds.byErr, errorKinds.byName = map[error]string{}, map[string]error{}
	}
	if _, ok := errorKinds.byErr[err]; ok {
		return nil
	}
	if _, ok := errorKinds.byName[name]; ok {
		return invalidf("register error %q: another error has this text, which names it in storage", name)
	}
	if len(errorKinds.order) >= MaxErrorKinds {
		return invalidf("register error %q: %d errors are registered already", name, MaxErrorKinds)
	}
	errorKinds.byErr[err], errorKinds.byName[name] = name, err
	errorKinds.order = append(errorKinds.order, err)
	return nil
}

// registeredName returns the name target is registered under.
func registeredName(target error) (string, bool) {
	if target == nil || !reflect.TypeOf(target).Comparable() {
		return "", false
	}
	errorKinds.RLock()
	defer errorKinds.RUnlock()
	name, ok := errorKinds.byErr[target]
	return name, ok
}

// registeredKinds lists the names of the registered errors err matches, in registration order.
func registeredKinds(err error) []string {
	errorKinds.RLock()
	defer errorKinds.RUnlock()
	var out []string
	for _, k := range errorKinds.order {
		if errors.Is(err, k) {
			out = append(out, errorKinds.byErr[k])
		}
	}
	return out
}

package persistence

import "time"

// MaxTime is the latest time a job or a query may name: the end of year 9999. Stores keep
// times as microseconds since 1970 in 64 bits, which overflow in year 294,247 (a begin_after
// past it wrapped round into the past and ran at once), and RFC 3339 and JSON write years
// with four digits. Do not change it.
var MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)

// ValidateTime checks a time a job or a query names (what, in the error): the zero time,
// which means none, or a time after it and not after MaxTime. Any other is ErrInvalid.
func ValidateTime(what string, t time.Time) error {
	if t.IsZero() || t.After(time.Time{}) && !t.After(MaxTime) {
		return nil
	}
	return invalidf("%s %s is out of range: a time must be after %s and not after %s",
		what, t.UTC().Format(time.RFC3339Nano), time.Time{}.Format(time.RFC3339), MaxTime.Format(time.RFC3339Nano))
}

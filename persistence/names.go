package persistence

import (
	"strings"
	"unicode"
)

// MaxNameLen is the longest queue, agent or quota name accepted.
const MaxNameLen = 100

// ValidateName checks a queue, agent or quota name. These names become parts of Redis keys
// (a queue name is the key's hash tag), so anything that could break the key schema is
// rejected rather than escaped: an escaped name would have two spellings, and operators read
// these names in keys, logs and commands. Allowed: 1 to 100 ASCII letters, digits, '.', '_'
// and '-'. kind names the thing in the error ("queue", "agent", "quota").
func ValidateName(kind, name string) error {
	if name == "" {
		return invalidf("empty %s name", kind)
	}
	if len(name) > MaxNameLen {
		return invalidf("%s name longer than %d characters", kind, MaxNameLen)
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r)) {
			return invalidf("%s name %q: only letters, digits, '.', '_' and '-' are allowed", kind, name)
		}
	}
	return nil
}

// ValidateUUID checks a dispatcher UUID: it becomes part of keys too, so the same rule applies.
func ValidateUUID(id string) error { return ValidateName("dispatcher UUID", id) }

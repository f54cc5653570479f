package persistence

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
	for i := 0; i < len(name); i++ { // bytes: a byte of a multi-byte rune is not allowed either
		if !nameByte[name[i]] {
			return invalidf("%s name %q: only letters, digits, '.', '_' and '-' are allowed", kind, name)
		}
	}
	return nil
}

// nameByte tells the bytes a name may have: ASCII letters, digits, '.', '_' and '-'. (A
// table: names are checked on every commit, and a rune-by-rune check was a noticeable part
// of a batch's own cost.)
var nameByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	return t
}()

// ValidateUUID checks a dispatcher UUID: it becomes part of keys too, so the same rule applies.
func ValidateUUID(id string) error { return ValidateName("dispatcher UUID", id) }

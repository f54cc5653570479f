// Package messages holds every message zasync's actors exchange, grouped by conversation.
// They are plain structs with no logic; pointers are sent.
package messages

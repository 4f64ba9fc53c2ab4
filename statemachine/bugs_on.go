//go:build stanzabugs

package statemachine

// Planted reports whether bug b is planted (stanzabugs builds only).
func (c Config) Planted(b Bug) bool { return c.Bugs&b != 0 }

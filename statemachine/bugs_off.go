//go:build !stanzabugs

package statemachine

// Planted reports whether bug b is planted: never, without the stanzabugs
// build tag.
func (Config) Planted(Bug) bool { return false }

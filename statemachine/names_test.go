package statemachine

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestPatternsOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"foo", "foo.bar", false},
		{"foo.*", "foo", false},
		{"foo.*", "foo.bar", true},
		{"foo.>", "foo", false},
		{"foo.>", "foo.bar.baz", true},
		{">", "anything.at.all", true},
		{"foo.*.bar", "foo.baz.*", true},
		{"foo.*.bar", "foo.baz.qux", false},
		{"*.b", "a.*", true},
		{"*", "*.*", false},
		{"a.*", "b.>", false},
	} {
		if got := PatternsOverlap(c.a, c.b); got != c.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := PatternsOverlap(c.b, c.a); got != c.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

// Two patterns overlap exactly when some channel matches both. Patterns of
// up to four tokens from {a, b, *, >} are checked against every channel of
// up to five tokens from {a, b, c}: c stands for a token neither names, and
// one token more than the longest pattern is enough for a '>'.
func TestPatternsOverlapMeansACommonChannel(t *testing.T) {
	var channels []string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			channels = append(channels, strings.Join(prefix, "."))
		}
		if len(prefix) == 5 {
			return
		}
		for _, tok := range []string{"a", "b", "c"} {
			grow(append(prefix, tok))
		}
	}
	grow(nil)
	pattern := rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(1, 4).Draw(t, "tokens")
		toks := make([]string, n)
		for i := range toks {
			choices := []string{"a", "b", "*"}
			if i == n-1 {
				choices = append(choices, ">")
			}
			toks[i] = rapid.SampledFrom(choices).Draw(t, "token")
		}
		return strings.Join(toks, ".")
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := pattern.Draw(t, "a"), pattern.Draw(t, "b")
		common := ""
		for _, ch := range channels {
			if MatchChannel(a, ch) && MatchChannel(b, ch) {
				common = ch
				break
			}
		}
		if got := PatternsOverlap(a, b); got != (common != "") {
			t.Fatalf("PatternsOverlap(%q, %q) = %v; a channel both match: %q", a, b, got, common)
		}
	})
}

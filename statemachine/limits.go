package statemachine

import (
	"fmt"
	"sort"
	"strings"
)

// ChannelLimits bound one channel. In Limits.ChannelLimits (the defaults of
// every channel) zero means unlimited. In a per-channel override zero means
// "inherit" and a negative value means unlimited.
type ChannelLimits struct {
	MaxSubscriptions   int
	MaxMsgs            int
	MaxBytes           int64
	MaxAgeNanos        int64
	MaxInactivityNanos int64
}

// Limits are the store limits of nats-streaming-server: global defaults,
// MaxChannels, and per-channel overrides keyed by channel name or wildcard
// pattern. A channel inherits from the defaults, then from every matching
// pattern from the widest to the narrowest, then from its literal name.
type Limits struct {
	MaxChannels int
	ChannelLimits
	PerChannel map[string]ChannelLimits
}

// Default limits of nats-streaming-server v0.25.
const (
	DefaultMaxChannels      = 100
	DefaultMaxSubscriptions = 1000
	DefaultMaxMsgs          = 1000000
	DefaultMaxBytes         = 1024000000
)

// DefaultLimits returns nats-streaming-server's default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxChannels: DefaultMaxChannels,
		ChannelLimits: ChannelLimits{
			MaxSubscriptions: DefaultMaxSubscriptions,
			MaxMsgs:          DefaultMaxMsgs,
			MaxBytes:         DefaultMaxBytes,
		},
	}
}

// Validate reports limits that cannot be applied.
func (l Limits) Validate() error {
	if l.MaxChannels < 0 || l.MaxSubscriptions < 0 || l.MaxMsgs < 0 || l.MaxBytes < 0 || l.MaxAgeNanos < 0 || l.MaxInactivityNanos < 0 {
		return fmt.Errorf("limits: global limits must not be negative: %+v", l.ChannelLimits)
	}
	for _, p := range sortedKeys(l.PerChannel) {
		if !ValidChannelPattern(p) {
			return fmt.Errorf("limits: invalid channel name or pattern %q", p)
		}
	}
	return nil
}

// For returns the effective limits of the channel name, with zero meaning
// unlimited.
func (l Limits) For(name string) ChannelLimits {
	eff := l.ChannelLimits
	var patterns []string
	for p := range l.PerChannel {
		if matchPattern(p, name) {
			patterns = append(patterns, p)
		}
	}
	sort.Slice(patterns, func(i, j int) bool { return wider(patterns[i], patterns[j]) })
	for _, p := range patterns {
		o := l.PerChannel[p]
		inheritInt(&eff.MaxSubscriptions, o.MaxSubscriptions)
		inheritInt(&eff.MaxMsgs, o.MaxMsgs)
		inheritInt64(&eff.MaxBytes, o.MaxBytes)
		inheritInt64(&eff.MaxAgeNanos, o.MaxAgeNanos)
		inheritInt64(&eff.MaxInactivityNanos, o.MaxInactivityNanos)
	}
	return eff
}

// wider orders patterns from the widest to the narrowest: fewer literal
// tokens first, then '>' before '*', then by name so the order is total.
func wider(a, b string) bool {
	la, lb := literalTokens(a), literalTokens(b)
	if la != lb {
		return la < lb
	}
	fa, fb := strings.HasSuffix(a, ">"), strings.HasSuffix(b, ">")
	if fa != fb {
		return fa
	}
	return a < b
}

func literalTokens(p string) int {
	n := 0
	for _, t := range strings.Split(p, ".") {
		if t != "*" && t != ">" {
			n++
		}
	}
	return n
}

func inheritInt(dst *int, v int) {
	switch {
	case v < 0:
		*dst = 0
	case v > 0:
		*dst = v
	}
}

func inheritInt64(dst *int64, v int64) {
	switch {
	case v < 0:
		*dst = 0
	case v > 0:
		*dst = v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package statemachine

// ValidClientID reports whether id matches ^[a-zA-Z0-9_-]+$.
func ValidClientID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// ValidChannel reports whether name can be a channel: a NATS subject without
// wildcards, empty tokens or white space.
func ValidChannel(name string) bool {
	return validSubject(name, false)
}

// ValidChannelPattern reports whether p can name channels in per-channel
// limits: like a channel, but '*' and '>' are allowed as whole tokens, and
// '>' only as the last one.
func ValidChannelPattern(p string) bool {
	return validSubject(p, true)
}

func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			switch s[i] {
			case ' ', '\t', '\r', '\n':
				return false
			}
			continue
		}
		tok := s[start:i]
		if tok == "" {
			return false
		}
		for j := 0; j < len(tok); j++ {
			if tok[j] == '*' || tok[j] == '>' {
				if !wildcards || len(tok) != 1 {
					return false
				}
				if tok[0] == '>' && i != len(s) {
					return false
				}
			}
		}
		start = i + 1
	}
	return true
}

// MatchChannel reports whether the channel name matches the pattern p ('*'
// one token, '>' one or more trailing tokens), as NATS subjects match.
func MatchChannel(p, name string) bool { return matchPattern(p, name) }

// PatternsOverlap reports whether some channel matches both patterns a and
// b: token by token, each pair is equal or has a '*', until a '>' on
// either side or the end of both. ("foo.*.bar" and "foo.baz.*" overlap in
// "foo.baz.bar", though neither matches the other.)
func PatternsOverlap(a, b string) bool {
	for {
		at, arest, amore := cut(a)
		bt, brest, bmore := cut(b)
		switch {
		case at == ">" || bt == ">":
			return true
		case at != "*" && bt != "*" && at != bt:
			return false
		}
		if !amore || !bmore {
			return amore == bmore
		}
		a, b = arest, brest
	}
}

// matchPattern reports whether the channel name matches the subject pattern
// p ('*' one token, '>' one or more trailing tokens).
func matchPattern(p, name string) bool {
	for {
		pt, prest, pmore := cut(p)
		nt, nrest, nmore := cut(name)
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != nt:
			return false
		}
		if !pmore || !nmore {
			return pmore == nmore
		}
		p, name = prest, nrest
	}
}

func cut(s string) (tok, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// lower returns s with ASCII upper-case letters lowered; channel names are
// unique regardless of case.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

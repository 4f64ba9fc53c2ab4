package statemachine

import "github.com/stanza-io/stanza/statemachine/pb"

// Due returns the commands that time makes due at nowNanos: AckWait
// redeliveries, MaxAge expiry and MaxInactivity deletions. The leader
// proposes them (stamped with nowNanos); applying one that is no longer due
// changes nothing. The result depends only on the state and nowNanos.
func (s *State) Due(nowNanos int64) []*pb.Command {
	var out []*pb.Command
	cmd := func(op any) { out = append(out, NewCommand(nowNanos, op)) }
	for _, sb := range sortedSubs(s.subs) {
		if sb.offline || len(sb.pending) == 0 || sb.group == nil && sb.failedHB() {
			continue
		}
		for _, p := range sb.pending {
			if p.expiryNanos <= nowNanos {
				cmd(&pb.Redeliver{SubID: sb.id})
				break
			}
		}
	}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		if age := ch.limits.MaxAgeNanos; age > 0 && ch.last >= ch.first && ch.firstTimestamp+age <= nowNanos {
			cmd(&pb.ExpireMsgs{Channel: name})
		}
		if ch.inactiveDue(nowNanos) {
			cmd(&pb.DeleteChannel{Channel: name})
		}
	}
	return out
}

package statemachine

import (
	"fmt"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// Snapshot encodes the whole state, messages included, deterministically:
// equal states give equal bytes.
func (s *State) Snapshot() []byte {
	snap := &pb.Snapshot{NextSubID: s.nextSubID}
	for _, id := range sortedKeys(s.clients) {
		c := s.clients[id]
		snap.Clients = append(snap.Clients, &pb.ClientState{Id: c.id, HbInbox: c.hbInbox, ConnID: c.connID, Protocol: c.protocol,
			PingInterval: c.pingInterval, PingMaxOut: c.pingMaxOut, FailedHB: c.failedHB})
	}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		cs := &pb.ChannelState{Name: ch.name, First: ch.first, Last: ch.last, LastTimestamp: ch.lastTimestamp, ActivityNanos: ch.activityNanos}
		msgs := ch.msgs
		if s.cfg.Planted(BugSnapshotDropsNewest) && len(msgs) > 0 {
			msgs = msgs[:len(msgs)-1]
			cs.Last--
		}
		for _, m := range msgs {
			cs.Msgs = append(cs.Msgs, &pb.StoredMsg{Data: m.data, Reply: m.reply, Timestamp: m.timestamp})
		}
		for _, sb := range sortedSubs(ch.subs) {
			cs.Subs = append(cs.Subs, subState(sb))
		}
		for _, gname := range sortedKeys(ch.queues) {
			g := ch.queues[gname]
			qs := &pb.QueueState{Name: g.name, LastSent: g.lastSent}
			for _, m := range g.members {
				qs.MemberIDs = append(qs.MemberIDs, m.id)
			}
			if g.shadow != nil {
				qs.Shadow = &pb.SubState{Id: g.shadow.id}
			}
			cs.Queues = append(cs.Queues, qs)
		}
		snap.Channels = append(snap.Channels, cs)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		panic(fmt.Sprintf("statemachine: encode snapshot: %v", err))
	}
	return data
}

func subState(sb *sub) *pb.SubState {
	ss := &pb.SubState{Id: sb.id, ClientID: sb.clientID, Inbox: sb.inbox, AckInbox: sb.ackInbox, DurableName: sb.durableName,
		MaxInFlight: sb.maxInflight, AckWaitNanos: sb.ackWaitNanos, LastSent: sb.lastSent, Offline: sb.offline}
	if sb.group != nil {
		ss.QGroup = sb.group.name
	}
	for _, seq := range sb.sortedPending() {
		p := sb.pending[seq]
		ss.Pending = append(ss.Pending, &pb.Pending{Seq: seq, ExpiryNanos: p.expiryNanos, RedeliveryCount: p.redeliveryCount})
	}
	return ss
}

// Restore replaces the state with a snapshot. A snapshot that does not
// decode or does not hold together is rejected and the state is unchanged.
func (s *State) Restore(data []byte) error {
	snap := &pb.Snapshot{}
	if err := proto.Unmarshal(data, snap); err != nil {
		return fmt.Errorf("statemachine: decode snapshot: %w", err)
	}
	n := New(s.cfg)
	n.nextSubID = snap.GetNextSubID()
	for _, cs := range snap.GetClients() {
		c := &client{id: cs.GetId(), hbInbox: cs.GetHbInbox(), connID: cs.GetConnID(), protocol: cs.GetProtocol(),
			pingInterval: cs.GetPingInterval(), pingMaxOut: cs.GetPingMaxOut(), failedHB: cs.GetFailedHB(), subs: map[uint64]*sub{}}
		if n.clients[c.id] != nil {
			return fmt.Errorf("statemachine: snapshot: duplicate client %q", c.id)
		}
		n.clients[c.id] = c
		if len(c.connID) > 0 {
			n.byConnID[string(c.connID)] = c
		}
	}
	for _, cs := range snap.GetChannels() {
		if err := n.restoreChannel(cs); err != nil {
			return err
		}
	}
	if err := n.CheckInvariants(); err != nil {
		return fmt.Errorf("statemachine: snapshot: %w", err)
	}
	*s = *n
	return nil
}

func (n *State) restoreChannel(cs *pb.ChannelState) error {
	name := cs.GetName()
	if !ValidChannel(name) || n.channels[name] != nil || n.byLower[lower(name)] != nil {
		return fmt.Errorf("statemachine: snapshot: bad or duplicate channel %q", name)
	}
	if cs.GetFirst() == 0 || cs.GetFirst() > cs.GetLast()+1 || uint64(len(cs.GetMsgs())) != cs.GetLast()+1-cs.GetFirst() {
		return fmt.Errorf("statemachine: snapshot: channel %q holds %d messages for first %d last %d", name, len(cs.GetMsgs()), cs.GetFirst(), cs.GetLast())
	}
	ch := newChannel(name, n.cfg.Limits.For(name))
	ch.first, ch.last, ch.lastTimestamp, ch.activityNanos = cs.GetFirst(), cs.GetLast(), cs.GetLastTimestamp(), cs.GetActivityNanos()
	for i, m := range cs.GetMsgs() {
		sm := storedMsg{data: m.GetData(), reply: m.GetReply(), timestamp: m.GetTimestamp()}
		sm.size = msgSize(name, sm, ch.first+uint64(i))
		ch.msgs = append(ch.msgs, sm)
		ch.bytes += sm.size
	}
	n.channels[name] = ch
	n.byLower[lower(name)] = ch

	for _, ss := range cs.GetSubs() {
		id := ss.GetId()
		if id == 0 || id >= n.nextSubID || n.subs[id] != nil {
			return fmt.Errorf("statemachine: snapshot: bad or duplicate subscription %d", id)
		}
		sb := &sub{id: id, ch: ch, clientID: ss.GetClientID(), inbox: ss.GetInbox(), ackInbox: ss.GetAckInbox(), durableName: ss.GetDurableName(),
			maxInflight: ss.GetMaxInFlight(), ackWaitNanos: ss.GetAckWaitNanos(), lastSent: ss.GetLastSent(), offline: ss.GetOffline(),
			pending: map[uint64]*pending{}}
		for _, p := range ss.GetPending() {
			sb.pending[p.GetSeq()] = &pending{expiryNanos: p.GetExpiryNanos(), redeliveryCount: p.GetRedeliveryCount()}
		}
		if !sb.offline {
			c := n.clients[sb.clientID]
			if c == nil || n.byAckInbox[sb.ackInbox] != nil {
				return fmt.Errorf("statemachine: snapshot: subscription %d has no client %q or a duplicate ack inbox", id, sb.clientID)
			}
			sb.client = c
			c.subs[id] = sb
			n.byAckInbox[sb.ackInbox] = sb
		}
		n.subs[id] = sb
		ch.subs[id] = sb
		if sb.durableName != "" && ss.GetQGroup() == "" {
			ch.durables[sb.clientID+"-"+sb.durableName] = sb
		}
	}
	for _, qs := range cs.GetQueues() {
		g := &queueGroup{name: qs.GetName(), lastSent: qs.GetLastSent()}
		for _, id := range qs.GetMemberIDs() {
			m := ch.subs[id]
			if m == nil || m.offline || m.group != nil {
				return fmt.Errorf("statemachine: snapshot: queue %q has a bad member %d", g.name, id)
			}
			m.group = g
			g.members = append(g.members, m)
		}
		if sh := qs.GetShadow(); sh != nil {
			m := ch.subs[sh.GetId()]
			if m == nil || !m.offline || m.group != nil {
				return fmt.Errorf("statemachine: snapshot: queue %q has a bad shadow %d", g.name, sh.GetId())
			}
			m.group = g
			g.shadow = m
		}
		for _, m := range append(append([]*sub(nil), g.members...), g.shadow) {
			if m != nil && m.durableName != "" {
				g.durable = true
			}
		}
		ch.queues[g.name] = g
	}
	return nil
}

// CheckInvariants verifies that the state holds together. A violation is a
// bug; the caller crashes with it.
func (s *State) CheckInvariants() error {
	for _, id := range sortedKeys(s.clients) {
		c := s.clients[id]
		if c.id != id {
			return fmt.Errorf("client %q indexed as %q", c.id, id)
		}
		if len(c.connID) > 0 && s.byConnID[string(c.connID)] != c {
			return fmt.Errorf("client %q missing from the connID index", id)
		}
		for sid, sb := range c.subs {
			if s.subs[sid] != sb || sb.offline || sb.client != c {
				return fmt.Errorf("client %q lists subscription %d that is not its online subscription", id, sid)
			}
		}
	}
	if len(s.byConnID) > len(s.clients) {
		return fmt.Errorf("connID index has %d entries for %d clients", len(s.byConnID), len(s.clients))
	}
	subsSeen := 0
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		if s.byLower[lower(name)] != ch {
			return fmt.Errorf("channel %q missing from the case index", name)
		}
		if ch.first == 0 || ch.first > ch.last+1 || uint64(len(ch.msgs)) != ch.last+1-ch.first {
			return fmt.Errorf("channel %q: %d messages for first %d last %d", name, len(ch.msgs), ch.first, ch.last)
		}
		var bytes, prevTs int64
		for i, m := range ch.msgs {
			bytes += m.size
			if i > 0 && m.timestamp < prevTs {
				return fmt.Errorf("channel %q: timestamp of seq %d goes back", name, ch.first+uint64(i))
			}
			prevTs = m.timestamp
		}
		if len(ch.msgs) > 0 && ch.lastTimestamp < prevTs {
			return fmt.Errorf("channel %q: last timestamp %d before its newest message's %d", name, ch.lastTimestamp, prevTs)
		}
		if bytes != ch.bytes {
			return fmt.Errorf("channel %q: bytes %d, messages sum to %d", name, ch.bytes, bytes)
		}
		for _, sb := range sortedSubs(ch.subs) {
			subsSeen++
			if s.subs[sb.id] != sb || sb.ch != ch {
				return fmt.Errorf("channel %q: subscription %d not indexed", name, sb.id)
			}
			if !sb.offline && s.byAckInbox[sb.ackInbox] != sb {
				return fmt.Errorf("subscription %d online without its ack inbox", sb.id)
			}
			if sb.group != nil && sb.group.shadow != sb && !containsSub(sb.group.members, sb) {
				return fmt.Errorf("subscription %d: not a member of its group %q", sb.id, sb.group.name)
			}
			if sb.group == nil && sb.durableName != "" && ch.durables[sb.clientID+"-"+sb.durableName] != sb {
				return fmt.Errorf("durable subscription %d not indexed", sb.id)
			}
			if sb.id >= s.nextSubID {
				return fmt.Errorf("subscription %d not below the next ID %d", sb.id, s.nextSubID)
			}
			sent := sb.lastSent
			if sb.group != nil {
				sent = sb.group.lastSent
			}
			if sent > ch.last {
				return fmt.Errorf("subscription %d: lastSent %d beyond last %d", sb.id, sent, ch.last)
			}
			for _, seq := range sb.sortedPending() {
				if seq < ch.first || seq > sent {
					return fmt.Errorf("subscription %d: pending %d outside [%d, lastSent %d]", sb.id, seq, ch.first, sent)
				}
			}
		}
		for key, sb := range ch.durables {
			if ch.subs[sb.id] != sb || sb.group != nil || sb.clientID+"-"+sb.durableName != key {
				return fmt.Errorf("channel %q: durable %q indexes a stale subscription %d", name, key, sb.id)
			}
		}
		for key, sb := range ch.durables {
			if ch.subs[sb.id] != sb || sb.group != nil || sb.clientID+"-"+sb.durableName != key {
				return fmt.Errorf("channel %q: durable %q indexes a stale subscription %d", name, key, sb.id)
			}
		}
		for _, gname := range sortedKeys(ch.queues) {
			g := ch.queues[gname]
			if g.name != gname {
				return fmt.Errorf("queue %q indexed as %q", g.name, gname)
			}
			if g.shadow != nil && (g.shadow.group != g || !g.shadow.offline || ch.subs[g.shadow.id] != g.shadow) {
				return fmt.Errorf("queue %q: bad shadow %d", gname, g.shadow.id)
			}
			if g.name != gname {
				return fmt.Errorf("queue %q indexed as %q", g.name, gname)
			}
			if g.shadow != nil && (g.shadow.group != g || !g.shadow.offline || ch.subs[g.shadow.id] != g.shadow) {
				return fmt.Errorf("queue %q: bad shadow %d", gname, g.shadow.id)
			}
			if (len(g.members) == 0) == (g.shadow == nil) {
				return fmt.Errorf("queue %q: %d members and shadow %v", gname, len(g.members), g.shadow != nil)
			}
			owner := map[uint64]uint64{}
			for _, m := range g.members {
				if m.group != g || m.offline {
					return fmt.Errorf("queue %q: member %d not online in the group", gname, m.id)
				}
				for q := range m.pending {
					if o, dup := owner[q]; dup {
						return fmt.Errorf("queue %q: seq %d pending on members %d and %d", gname, q, o, m.id)
					}
					owner[q] = m.id
				}
			}
		}
	}
	if subsSeen != len(s.subs) {
		return fmt.Errorf("%d subscriptions indexed, %d in channels", len(s.subs), subsSeen)
	}
	for inbox, sb := range s.byAckInbox {
		if sb.ackInbox != inbox || sb.offline || s.subs[sb.id] != sb {
			return fmt.Errorf("ack inbox %q indexes a stale subscription %d", inbox, sb.id)
		}
	}
	return nil
}

// ChannelNames returns the channel names, sorted.
func (s *State) ChannelNames() []string { return sortedKeys(s.channels) }

// ChannelInfo describes a channel's log.
type ChannelInfo struct {
	Name        string
	First, Last uint64
	Msgs        int
	Bytes       int64
}

// Channel returns a channel's log bounds.
func (s *State) Channel(name string) (ChannelInfo, bool) {
	ch, ok := s.channels[name]
	if !ok {
		return ChannelInfo{}, false
	}
	return ChannelInfo{Name: name, First: ch.first, Last: ch.last, Msgs: len(ch.msgs), Bytes: ch.bytes}, true
}

// Message returns the message at seq in the channel, as it would be
// delivered for the first time.
func (s *State) Message(name string, seq uint64) (*pb.MsgProto, bool) {
	ch, ok := s.channels[name]
	if !ok {
		return nil, false
	}
	m, ok := ch.msg(seq)
	if !ok {
		return nil, false
	}
	return &pb.MsgProto{Sequence: seq, Subject: name, Reply: m.reply, Data: m.data, Timestamp: m.timestamp}, true
}

func containsSub(list []*sub, sb *sub) bool {
	for _, m := range list {
		if m == sb {
			return true
		}
	}
	return false
}

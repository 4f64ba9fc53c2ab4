package statemachine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Snapshot encodes the whole state deterministically (equal states give
// equal bytes) except the messages: it records where each channel's are in
// the message log. It is what a replica keeps beside its own log; see
// Retention for what the log must then still hold.
func (s *State) Snapshot() []byte { return s.snapshot(false) }

// SnapshotWithMessages is Snapshot with every channel's messages included:
// self-contained, for a replica whose message log lacks them. Restoring it
// puts them in that replica's log.
func (s *State) SnapshotWithMessages() []byte { return s.snapshot(true) }

func (s *State) snapshot(withMessages bool) []byte {
	snap := &pb.Snapshot{NextSubID: s.nextSubID, NextLogID: s.nextLogID}
	for _, id := range sortedKeys(s.clients) {
		c := s.clients[id]
		snap.Clients = append(snap.Clients, &pb.ClientState{Id: c.id, HbInbox: c.hbInbox, ConnID: c.connID, Protocol: c.protocol,
			PingInterval: c.pingInterval, PingMaxOut: c.pingMaxOut, FailedHB: c.failedHB})
	}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		cs := &pb.ChannelState{Name: ch.name, First: ch.first, Last: ch.last, LastTimestamp: ch.lastTimestamp, ActivityNanos: ch.activityNanos,
			LogID: ch.logID, Bytes: ch.bytes, FirstTimestamp: ch.firstTimestamp}
		if s.cfg.Planted(BugSnapshotDropsNewest) && ch.count() > 0 {
			_, size := s.statMsg(ch, ch.last)
			cs.Last--
			cs.Bytes -= size
		}
		if withMessages {
			for seq := cs.First; seq <= cs.Last; seq++ {
				cs.Records = append(cs.Records, s.getMsg(ch, seq))
			}
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
	// Everything in a snapshot is the state machine's own: a field this
	// version does not know is state a later version kept, and restoring
	// without it would make this replica differ.
	if where := unknownField(snap.ProtoReflect()); where != "" {
		return fmt.Errorf("statemachine: snapshot: %s is unknown to this version", where)
	}
	n := New(s.cfg)
	n.msgs, n.own = s.msgs, s.own
	n.nextSubID = snap.GetNextSubID()
	n.nextLogID = snap.GetNextLogID()
	if n.nextSubID == 0 || n.nextLogID == 0 {
		return fmt.Errorf("statemachine: snapshot: next subscription ID %d or log ID %d is 0", n.nextSubID, n.nextLogID)
	}
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
	if n.own != nil {
		live := map[string]bool{}
		for _, ch := range n.channels {
			live[ch.log] = true
		}
		for log := range n.own.logs {
			if !live[log] {
				n.own.drop(log)
			}
		}
	}
	*s = *n
	return nil
}

// putRecords checks the messages a snapshot carries for ch and puts them
// in the log, which first drops what it holds below them.
func (n *State) putRecords(ch *channel, recs [][]byte) error {
	var bytes, prevTs int64
	for i, rec := range recs {
		seq := ch.first + uint64(i)
		m := &pb.MsgProto{}
		if err := proto.Unmarshal(rec, m); err != nil || m.GetSequence() != seq || m.GetSubject() != ch.name ||
			m.GetRedelivered() || m.GetRedeliveryCount() != 0 || i > 0 && m.GetTimestamp() < prevTs {
			return fmt.Errorf("statemachine: snapshot: channel %q: bad message at seq %d", ch.name, seq)
		}
		prevTs = m.GetTimestamp()
		bytes += int64(len(rec))
	}
	if bytes != ch.bytes {
		return fmt.Errorf("statemachine: snapshot: channel %q: messages of %d bytes, recorded %d", ch.name, bytes, ch.bytes)
	}
	if err := n.msgs.TrimBefore(ch.log, ch.first); err != nil {
		return fmt.Errorf("statemachine: snapshot: channel %q: %w", ch.name, err)
	}
	for i, rec := range recs {
		seq := ch.first + uint64(i)
		m := &pb.MsgProto{}
		_ = proto.Unmarshal(rec, m) // checked above
		if err := n.msgs.Put(ch.log, seq, m.GetTimestamp(), rec); err != nil {
			return fmt.Errorf("statemachine: snapshot: channel %q: %w", ch.name, err)
		}
	}
	return nil
}

func (n *State) restoreChannel(cs *pb.ChannelState) error {
	name := cs.GetName()
	if !ValidChannel(name) || n.channels[name] != nil || n.byLower[lower(name)] != nil {
		return fmt.Errorf("statemachine: snapshot: bad or duplicate channel %q", name)
	}
	if cs.GetFirst() == 0 || cs.GetFirst() > cs.GetLast()+1 || cs.GetBytes() < 0 || cs.GetLogID() == 0 || cs.GetLogID() >= n.nextLogID {
		return fmt.Errorf("statemachine: snapshot: channel %q: bad log %d, first %d, last %d or bytes %d", name, cs.GetLogID(), cs.GetFirst(), cs.GetLast(), cs.GetBytes())
	}
	ch := newChannel(name, cs.GetLogID(), n.cfg.Limits.For(name))
	ch.first, ch.last, ch.lastTimestamp, ch.activityNanos = cs.GetFirst(), cs.GetLast(), cs.GetLastTimestamp(), cs.GetActivityNanos()
	ch.bytes, ch.firstTimestamp = cs.GetBytes(), cs.GetFirstTimestamp()
	if recs := cs.GetRecords(); len(recs) > 0 {
		if uint64(len(recs)) != ch.count() {
			return fmt.Errorf("statemachine: snapshot: channel %q carries %d messages for first %d last %d", name, len(recs), ch.first, ch.last)
		}
		if err := n.putRecords(ch, recs); err != nil {
			return err
		}
	}
	if ch.count() > 0 {
		// The log must hold what the snapshot says, with matching
		// timestamps at both ends.
		for _, end := range []struct {
			seq uint64
			ts  int64
		}{{ch.first, ch.firstTimestamp}, {ch.last, ch.lastTimestamp}} {
			ts, _, err := n.msgs.Stat(ch.log, end.seq)
			if err != nil || ts != end.ts {
				return fmt.Errorf("statemachine: snapshot: channel %q: the message log does not hold seq %d as recorded (timestamp %d): %v", name, end.seq, ts, err)
			}
		}
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
			pending: map[uint64]pending{}}
		for _, p := range ss.GetPending() {
			sb.pending[p.GetSeq()] = pending{expiryNanos: p.GetExpiryNanos(), redeliveryCount: p.GetRedeliveryCount()}
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
		ch.addSub(sb)
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
		ch.addQueue(g)
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
	logs := map[uint64]string{}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		if other, dup := logs[ch.logID]; dup {
			return fmt.Errorf("channels %q and %q share log %d", other, name, ch.logID)
		}
		logs[ch.logID] = name
		if s.byLower[lower(name)] != ch {
			return fmt.Errorf("channel %q missing from the case index", name)
		}
		if ch.first == 0 || ch.first > ch.last+1 || ch.bytes < 0 || (ch.bytes == 0) != (ch.count() == 0) {
			return fmt.Errorf("channel %q: %d bytes for first %d last %d", name, ch.bytes, ch.first, ch.last)
		}
		if ch.count() > 0 && ch.firstTimestamp > ch.lastTimestamp {
			return fmt.Errorf("channel %q: first timestamp %d after the last %d", name, ch.firstTimestamp, ch.lastTimestamp)
		}
		if ch.logID == 0 || ch.logID >= s.nextLogID {
			return fmt.Errorf("channel %q: log %q not below the next log ID %d", name, ch.log, s.nextLogID)
		}
		if ch.subOrder != nil && !slices.Equal(ch.subOrder, sortedSubs(ch.subs)) {
			return fmt.Errorf("channel %q: the cached delivery order is stale", name)
		}
		if ch.queueOrder != nil && !slices.Equal(ch.queueOrder, sortedKeys(ch.queues)) {
			return fmt.Errorf("channel %q: the cached queue order is stale", name)
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
	return ChannelInfo{Name: name, First: ch.first, Last: ch.last, Msgs: int(ch.count()), Bytes: ch.bytes}, true
}

// ErrNoMessage: the channel does not hold that sequence.
var ErrNoMessage = errors.New("statemachine: no such message")

// Message returns the message at seq in the channel, as it would be
// delivered for the first time. It reads the message log, which may fail.
func (s *State) Message(name string, seq uint64) (*pb.MsgProto, error) {
	ch, ok := s.channels[name]
	if !ok || seq < ch.first || seq > ch.last {
		return nil, fmt.Errorf("%w: %q seq %d", ErrNoMessage, name, seq)
	}
	rec, err := s.msgs.Get(ch.log, seq)
	if err != nil {
		return nil, fmt.Errorf("statemachine: read %q seq %d: %w", name, seq, err)
	}
	m := &pb.MsgProto{}
	if err := proto.Unmarshal(rec, m); err != nil {
		return nil, fmt.Errorf("statemachine: %q seq %d does not decode: %w", name, seq, err)
	}
	return m, nil
}

func containsSub(list []*sub, sb *sub) bool {
	for _, m := range list {
		if m == sb {
			return true
		}
	}
	return false
}

// unknownField names the first field in m, or in a message inside it, that
// this version's schema does not have; "" if there is none.
func unknownField(m protoreflect.Message) string {
	for u := m.GetUnknown(); len(u) > 0; {
		num, typ, n := protowire.ConsumeTag(u)
		if n < 0 {
			return fmt.Sprintf("a malformed field of %s", m.Descriptor().Name())
		}
		// A reserved number is a field this version dropped on purpose.
		if !m.Descriptor().ReservedRanges().Has(num) {
			return fmt.Sprintf("field %d of %s", num, m.Descriptor().Name())
		}
		k := protowire.ConsumeFieldValue(num, typ, u[n:])
		if k < 0 {
			return fmt.Sprintf("a malformed field of %s", m.Descriptor().Name())
		}
		u = u[n+k:]
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() { // in the schema's order: the same answer on every replica
		fd := fields.Get(i)
		if fd.Message() == nil || fd.IsMap() || !m.Has(fd) {
			continue // no map in the snapshot's schema
		}
		if !fd.IsList() {
			if where := unknownField(m.Get(fd).Message()); where != "" {
				return where
			}
			continue
		}
		l := m.Get(fd).List()
		for j := range l.Len() {
			if where := unknownField(l.Get(j).Message()); where != "" {
				return where
			}
		}
	}
	return ""
}

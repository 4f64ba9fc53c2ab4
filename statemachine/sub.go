package statemachine

import (
	"slices"
	"sort"

	"github.com/stanza-io/stanza/statemachine/pb"
)

// sub is one subscription record: online, an offline durable, or the shadow
// of a durable queue group with no member.
type sub struct {
	id           uint64
	ch           *channel
	clientID     string  // kept while offline, for monitoring and resume
	client       *client // nil while offline
	inbox        string
	ackInbox     string
	durableName  string
	group        *queueGroup // nil unless a queue member or shadow
	maxInflight  int32
	ackWaitNanos int64
	lastSent     uint64 // plain and durable subscriptions; groups share group.lastSent
	offline      bool
	pending      map[uint64]pending // unacked deliveries by sequence (values: a delivery allocates nothing)
}

type pending struct {
	expiryNanos     int64
	redeliveryCount uint32
}

// queueGroup is a queue group: members share its lastSent, and each message
// goes to one member.
type queueGroup struct {
	name     string // "durable:group" for durable groups
	durable  bool
	lastSent uint64
	members  []*sub // rotation order: the chosen member moves to the end
	shadow   *sub   // a durable group's state while it has no member
}

func (sb *sub) stalled() bool { return len(sb.pending) >= int(sb.maxInflight) }

func (sb *sub) sortedPending() []uint64 {
	seqs := make([]uint64, 0, len(sb.pending))
	for q := range sb.pending {
		seqs = append(seqs, q)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// ValidateSubscribe returns the rejection of a subscription request that
// fails before the state is consulted, in nats-streaming-server's order.
func ValidateSubscribe(req *pb.SubscriptionRequest) string {
	switch {
	case req.GetClientID() == "":
		return ErrMissingClient
	case req.GetAckWaitInSecs() <= 0:
		return ErrInvalidAckWait
	case req.GetMaxInFlight() <= 0:
		return ErrInvalidMaxInflight
	case req.GetStartPosition() < pb.StartPosition_NewOnly || req.GetStartPosition() > pb.StartPosition_First:
		return ErrInvalidStart
	case !ValidChannel(req.GetSubject()):
		return ErrInvalidSubject
	case req.GetInbox() == "":
		return ErrInvalidSubReq
	}
	return ""
}

const nanosPerSecond = 1_000_000_000

func (a *applier) subscribe(op *pb.Subscribe, replaceDurable bool) {
	req := op.GetRequest()
	if e := ValidateSubscribe(req); e != "" {
		a.res.Err = e
		return
	}
	c, ok := a.s.clients[req.GetClientID()]
	if !ok {
		a.res.Err = ErrUnknownClient
		return
	}
	if op.GetAckInbox() == "" || a.s.byAckInbox[op.GetAckInbox()] != nil {
		a.res.Err = ErrInvalidSubReq
		return
	}
	ch, e := a.lookupOrCreate(req.GetSubject())
	if e != "" {
		a.res.Err = e
		return
	}
	online := func(sb *sub) {
		sb.clientID, sb.inbox, sb.ackInbox = c.id, req.GetInbox(), op.GetAckInbox()
		sb.maxInflight, sb.ackWaitNanos = req.GetMaxInFlight(), int64(req.GetAckWaitInSecs())*nanosPerSecond
		sb.offline, sb.client = false, c
		c.subs[sb.id] = sb
		a.s.byAckInbox[sb.ackInbox] = sb
		ch.activityNanos = a.now
		a.res.AckInbox = sb.ackInbox
	}

	if q := req.GetQGroup(); q != "" {
		name := q
		if d := req.GetDurableName(); d != "" {
			for i := 0; i < len(d); i++ {
				if d[i] == ':' {
					a.res.Err = ErrInvalidDurName
					return
				}
			}
			name = d + ":" + q
		}
		g := ch.queues[name]
		if g != nil && g.shadow != nil {
			// The first member back takes over the durable group's shadow:
			// its pending messages are redelivered first.
			sb := g.shadow
			g.shadow = nil
			g.members = append(g.members, sb)
			online(sb)
			a.resendPending(sb)
			a.deliverGroup(g)
			return
		}
		if !a.roomForSub(ch) {
			return
		}
		sb := a.newSub(ch, req.GetDurableName())
		if g == nil {
			g = &queueGroup{name: name, durable: req.GetDurableName() != "", lastSent: a.startSeq(ch, req)}
			ch.addQueue(g)
		}
		sb.group = g
		g.members = append(g.members, sb)
		online(sb)
		a.deliverGroup(g)
		return
	}

	if d := req.GetDurableName(); d != "" {
		key := c.id + "-" + d
		if sb := ch.durables[key]; sb != nil {
			if !sb.offline {
				if !replaceDurable {
					a.res.Err = ErrDupDurable
					return
				}
				// The client asks again (its first request timed out, say):
				// the online one is closed, and this one resumes it.
				a.closeSub(sb, false)
			}
			// Resume: the start position is ignored; pending messages are
			// redelivered before anything new.
			online(sb)
			a.resendPending(sb)
			a.deliverSub(sb)
			return
		}
		if !a.roomForSub(ch) {
			return
		}
		sb := a.newSub(ch, d)
		sb.lastSent = a.startSeq(ch, req)
		ch.durables[key] = sb
		online(sb)
		a.deliverSub(sb)
		return
	}

	if !a.roomForSub(ch) {
		return
	}
	sb := a.newSub(ch, "")
	sb.lastSent = a.startSeq(ch, req)
	online(sb)
	a.deliverSub(sb)
}

func (a *applier) roomForSub(ch *channel) bool {
	if maxSubs := ch.limits.MaxSubscriptions; maxSubs > 0 && len(ch.subs) >= maxSubs {
		a.res.Err = ErrTooManySubs
		return false
	}
	return true
}

func (a *applier) newSub(ch *channel, durableName string) *sub {
	sb := &sub{id: a.s.nextSubID, ch: ch, durableName: durableName, pending: map[uint64]pending{}}
	a.s.nextSubID++
	a.s.subs[sb.id] = sb
	ch.addSub(sb)
	return sb
}

// startSeq returns the lastSent of a new subscription: the next delivery is
// lastSent+1.
func (a *applier) startSeq(ch *channel, req *pb.SubscriptionRequest) uint64 {
	switch req.GetStartPosition() {
	case pb.StartPosition_LastReceived:
		if ch.last >= ch.first {
			return ch.last - 1
		}
		return ch.last
	case pb.StartPosition_TimeDeltaStart:
		start := a.now - req.GetStartTimeDelta()
		// The first message at or after start; timestamps are monotonic.
		// The log may still hold messages below first, or (while a
		// restarted replica catches up) beyond last.
		if ch.first > ch.last {
			return ch.last
		}
		seq, ok := a.s.msgs.SeqAtOrAfter(ch.log, start)
		if !ok {
			return ch.last
		}
		return min(max(seq, ch.first), ch.last+1) - 1
	case pb.StartPosition_SequenceStart:
		q := req.GetStartSequence()
		switch {
		case q < ch.first:
			return ch.first - 1
		case q > ch.last:
			return ch.last
		}
		return q - 1
	case pb.StartPosition_First:
		return ch.first - 1
	}
	return ch.last // NewOnly
}

// deliver sends seq to sb and records it as pending.
func (a *applier) deliver(sb *sub, seq uint64, redelivery bool) {
	if seq < sb.ch.first || seq > sb.ch.last {
		panic("statemachine: deliver of a sequence the channel does not hold")
	}
	var rec []byte
	if a.records {
		rec = a.s.getMsg(sb.ch, seq)
	}
	p := sb.pending[seq] // the zero value for a first delivery
	if redelivery {
		p.redeliveryCount++
	}
	p.expiryNanos = a.now + sb.ackWaitNanos
	sb.pending[seq] = p
	flagged := redelivery && !a.s.cfg.Planted(BugRedeliveryNotFlagged)
	a.res.Deliveries = append(a.res.Deliveries, Delivery{SubID: sb.id, Inbox: sb.inbox, Seq: seq, Record: rec,
		Redelivered: flagged, RedeliveryCount: p.redeliveryCount})
}

// nextSeq is the next sequence to deliver after lastSent, skipping what limits
// removed.
func nextSeq(ch *channel, lastSent uint64) uint64 {
	if lastSent+1 < ch.first {
		return ch.first
	}
	return lastSent + 1
}

// deliverSub sends a plain or durable subscription what it has not seen, up
// to MaxInflight.
func (a *applier) deliverSub(sb *sub) {
	ch := sb.ch
	for !sb.offline && !sb.stalled() {
		seq := nextSeq(ch, sb.lastSent)
		if seq > ch.last {
			return
		}
		a.deliver(sb, seq, false)
		sb.lastSent = seq
	}
}

// deliverGroup sends a queue group what it has not seen, each message to the
// best member, until every member is stalled.
func (a *applier) deliverGroup(g *queueGroup) {
	if len(g.members) == 0 {
		return
	}
	ch := g.members[0].ch
	for nextSeq(ch, g.lastSent) <= ch.last {
		m := g.pick(false)
		if m == nil {
			return
		}
		seq := nextSeq(ch, g.lastSent)
		a.deliver(m, seq, false)
		g.lastSent = seq
	}
}

// pick chooses the member for the next message: among the members that are
// not stalled (or all, for forced redeliveries), those whose client's
// heartbeats are fine first, the one with the fewest pending messages,
// earliest in rotation order. The chosen member moves to the end.
func (g *queueGroup) pick(force bool) *sub {
	best := -1
	bestFailed := false
	for i, m := range g.members {
		if !force && m.stalled() {
			continue
		}
		failed := m.failedHB()
		if best < 0 || (bestFailed && !failed) || (failed == bestFailed && len(m.pending) < len(g.members[best].pending)) {
			best, bestFailed = i, failed
		}
	}
	if best < 0 {
		return nil
	}
	m := g.members[best]
	g.members = append(append(g.members[:best:best], g.members[best+1:]...), m)
	return m
}

// failedHB reports whether the subscription's client is failing heartbeats.
func (sb *sub) failedHB() bool { return sb.client != nil && sb.client.failedHB }

// deliverChannel gives every online subscription of the channel a chance to
// receive what it has not seen.
func (a *applier) deliverChannel(ch *channel) {
	for _, name := range ch.sortedQueues() {
		a.deliverGroup(ch.queues[name])
	}
	for _, sb := range ch.sortedSubs() {
		if sb.group == nil {
			a.deliverSub(sb)
		}
	}
}

// resendPending force-redelivers every pending message of sb, in order.
func (a *applier) resendPending(sb *sub) {
	for _, seq := range sb.sortedPending() {
		a.deliver(sb, seq, true)
	}
}

func (a *applier) publish(msgs []*pb.PubMsg) {
	a.res.PubAcks = slices.Grow(a.res.PubAcks, len(msgs))
	for _, m := range msgs {
		ack := PubAck{Guid: m.GetGuid()}
		ack.Seq, ack.Err = a.publishOne(m)
		a.res.PubAcks = append(a.res.PubAcks, ack)
		if ack.Err == "" {
			a.deliverChannel(a.s.channels[m.GetSubject()])
		}
	}
}

// ValidatePublish returns the rejection of a message that fails before the
// state is consulted.
func ValidatePublish(m *pb.PubMsg) string {
	if m.GetGuid() == "" || !ValidChannel(m.GetSubject()) {
		return ErrInvalidPubReq
	}
	return ""
}

func (a *applier) publishOne(m *pb.PubMsg) (uint64, string) {
	if e := ValidatePublish(m); e != "" {
		return 0, e
	}
	// With a connection ID the publisher is known by it alone, so a replaced
	// client's late publishes are refused.
	if conn := m.GetConnID(); len(conn) > 0 {
		if _, ok := a.s.byConnID[string(conn)]; !ok {
			return 0, ErrInvalidPubReq
		}
	} else if _, ok := a.s.clients[m.GetClientID()]; !ok {
		return 0, ErrInvalidPubReq
	}
	ch, e := a.lookupOrCreate(m.GetSubject())
	if e != "" {
		return 0, e
	}
	return a.append(ch, m.GetData(), m.GetReply()), ""
}

package statemachine

import "github.com/stanza-io/stanza/statemachine/pb"

// unsubscribe removes a subscription (or only closes it, for subclose),
// found by ack inbox, then by delivery inbox: a client whose subscribe timed
// out sends its delivery inbox.
func (a *applier) unsubscribe(req *pb.UnsubscribeRequest, closeOnly bool) {
	ch, ok := a.s.channels[req.GetSubject()]
	if !ok {
		a.res.Err = ErrUnknownChannel
		return
	}
	sb := a.s.byAckInbox[req.GetInbox()]
	if sb != nil && sb.ch != ch {
		sb = nil
	}
	if sb == nil {
		for _, cand := range sortedSubs(ch.subs) {
			if !cand.offline && cand.inbox == req.GetInbox() {
				sb = cand
				break
			}
		}
	}
	if sb == nil {
		a.res.Err = ErrInvalidSub
		return
	}
	if sb.clientID != req.GetClientID() {
		a.res.Err = ErrUnknownClient
		return
	}
	a.closeSub(sb, !closeOnly)
}

// closeSub takes an online subscription off line. With unsubscribe, durable
// state is forgotten; without, a durable stays offline and the last member of
// a durable queue group leaves a shadow.
func (a *applier) closeSub(sb *sub, unsubscribe bool) {
	ch := sb.ch
	delete(sb.client.subs, sb.id)
	delete(a.s.byAckInbox, sb.ackInbox)
	sb.client = nil
	sb.offline = true
	ch.activityNanos = a.now

	if g := sb.group; g != nil {
		for i, m := range g.members {
			if m == sb {
				g.members = append(g.members[:i:i], g.members[i+1:]...)
				break
			}
		}
		if len(g.members) > 0 {
			if a.s.cfg.Planted(BugQueueLeaveDropsPending) {
				clear(sb.pending)
			}
			// The leaving member's unacked messages go to the others, now.
			for _, seq := range sb.sortedPending() {
				m := g.pick(true)
				m.pending[seq] = pending{redeliveryCount: sb.pending[seq].redeliveryCount}
				a.deliver(m, seq, true)
			}
			a.forget(sb)
			a.deliverGroup(g)
			return
		}
		if g.durable && !unsubscribe {
			sb.inbox, sb.ackInbox = "", ""
			g.shadow = sb
			return
		}
		ch.removeQueue(g.name)
		a.forget(sb)
		return
	}
	if sb.durableName != "" && !unsubscribe {
		sb.inbox, sb.ackInbox = "", ""
		return
	}
	if sb.durableName != "" {
		delete(ch.durables, sb.clientID+"-"+sb.durableName)
	}
	a.forget(sb)
}

func (a *applier) forget(sb *sub) {
	delete(a.s.subs, sb.id)
	sb.ch.removeSub(sb.id)
}

// acks removes acknowledged messages from pending lists, then delivers what
// the freed room allows, ack by ack: the single acks first, then the runs.
func (a *applier) acks(op *pb.Acks) {
	for _, af := range op.GetAcks() {
		if sb := a.ackedSub(af.GetAckInbox(), af.GetAck().GetSubject()); sb != nil {
			a.ack(sb, af.GetAck().GetSequence())
		}
	}
	for _, r := range op.GetRuns() {
		// Acking removes no subscription: one lookup serves the run.
		if sb := a.ackedSub(r.GetAckInbox(), r.GetSubject()); sb != nil {
			for _, seq := range r.GetSequences() {
				a.ack(sb, seq)
			}
		}
	}
}

// ackedSub is the subscription of an ack inbox, if the ack names its
// channel; an ack for an unknown subscription or channel is dropped, as the
// original does.
func (a *applier) ackedSub(ackInbox, subject string) *sub {
	sb := a.s.byAckInbox[ackInbox]
	if sb == nil || sb.ch.name != subject {
		return nil
	}
	return sb
}

// ack removes seq from sb's pending list and delivers what that makes room
// for.
func (a *applier) ack(sb *sub, seq uint64) {
	if _, ok := sb.pending[seq]; ok {
		delete(sb.pending, seq)
	} else if g := sb.group; g != nil {
		// A queue member may ack a message now owned by another member.
		for _, m := range g.members {
			delete(m.pending, seq)
		}
	}
	if sb.group != nil {
		a.deliverGroup(sb.group)
	} else {
		a.deliverSub(sb)
	}
}

// redeliver resends the messages of a subscription whose AckWait expired.
// Queue groups may resend to another member.
func (a *applier) redeliver(id uint64) {
	sb := a.s.subs[id]
	if sb == nil || sb.offline {
		return
	}
	if sb.group == nil && sb.failedHB() {
		return // a client failing heartbeats gets no redeliveries until it answers
	}
	for _, seq := range sb.sortedPending() {
		p := sb.pending[seq]
		if p.expiryNanos > a.now {
			continue
		}
		target := sb
		if g := sb.group; g != nil {
			target = g.pick(true)
			if target != sb {
				delete(sb.pending, seq)
				target.pending[seq] = pending{redeliveryCount: p.redeliveryCount}
			}
		}
		a.deliver(target, seq, true)
	}
}

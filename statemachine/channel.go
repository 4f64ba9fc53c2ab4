package statemachine

import (
	"fmt"
)

// channel is a FIFO message log. It holds sequences first..last; an empty
// channel has first == last+1 (a new one: first 1, last 0). The messages
// themselves are in the message log, under the name log.
type channel struct {
	name           string
	logID          uint64
	log            string // logName(logID)
	limits         ChannelLimits
	first, last    uint64
	bytes          int64 // sum of the record sizes of first..last
	firstTimestamp int64 // of message first, when the channel holds any
	lastTimestamp  int64
	activityNanos  int64 // last publish or subscription change, for MaxInactivity

	subs     map[uint64]*sub        // every subscription record of the channel
	durables map[string]*sub        // plain durables by clientID + "-" + durableName
	queues   map[string]*queueGroup // by group name ("durable:group" for durable groups)

	// Delivery order, built when needed and dropped when subs or queues
	// change (addSub, removeSub, addQueue, removeQueue): every publish
	// walks it, and sorting the maps each time was most of a publish's
	// cost with a subscriber.
	subOrder   []*sub   // subs by ID; nil: to be built
	queueOrder []string // queue names, sorted; nil: to be built
}

func (ch *channel) addSub(sb *sub) {
	ch.subs[sb.id] = sb
	ch.subOrder = nil
}

func (ch *channel) removeSub(id uint64) {
	delete(ch.subs, id)
	ch.subOrder = nil
}

func (ch *channel) addQueue(g *queueGroup) {
	ch.queues[g.name] = g
	ch.queueOrder = nil
}

func (ch *channel) removeQueue(name string) {
	delete(ch.queues, name)
	ch.queueOrder = nil
}

// sortedSubs is every subscription record of the channel by ID. Callers
// must not change the slice; it stays valid while subs change.
func (ch *channel) sortedSubs() []*sub {
	if ch.subOrder == nil {
		ch.subOrder = sortedSubs(ch.subs)
	}
	return ch.subOrder
}

// sortedQueues is the names of the channel's queue groups, sorted, under
// the same rules as sortedSubs.
func (ch *channel) sortedQueues() []string {
	if ch.queueOrder == nil {
		ch.queueOrder = sortedKeys(ch.queues)
	}
	return ch.queueOrder
}

// count is the number of messages the channel holds.
func (ch *channel) count() uint64 { return ch.last + 1 - ch.first }

func (ch *channel) onlineSubs() int {
	n := 0
	for _, sb := range ch.subs {
		if !sb.offline {
			n++
		}
	}
	return n
}

// lookupOrCreate finds the channel or creates it, enforcing MaxChannels and
// case-insensitive uniqueness. It returns the rejection string on failure.
func (a *applier) lookupOrCreate(name string) (*channel, string) {
	if ch, ok := a.s.channels[name]; ok {
		return ch, ""
	}
	if other, ok := a.s.byLower[lower(name)]; ok {
		return nil, fmt.Sprintf(errCaseConflictFormat, name, other.name)
	}
	if maxCh := a.s.cfg.Limits.MaxChannels; maxCh > 0 && len(a.s.channels) >= maxCh {
		return nil, ErrTooManyChannels
	}
	ch := newChannel(name, a.s.nextLogID, a.s.cfg.Limits.For(name))
	a.s.nextLogID++
	ch.activityNanos = a.now
	a.s.channels[name] = ch
	a.s.byLower[lower(name)] = ch
	return ch, ""
}

func newChannel(name string, logID uint64, limits ChannelLimits) *channel {
	return &channel{name: name, logID: logID, log: logName(logID), limits: limits, first: 1, subs: map[uint64]*sub{}, durables: map[string]*sub{}, queues: map[string]*queueGroup{}}
}

// append stores a message, stamping its sequence and a timestamp clamped to
// be monotonic in the channel, then enforces MaxMsgs and MaxBytes.
func (a *applier) append(ch *channel, data []byte, reply string) uint64 {
	ts := max(a.now, ch.lastTimestamp)
	seq := ch.last + 1
	// The log copies the record: one buffer serves every publish.
	rec := encodeRecord(a.s.recBuf[:0], seq, ch.name, reply, data, ts)
	a.s.recBuf = rec
	a.s.putMsg(ch, seq, ts, rec)
	if ch.first == seq {
		ch.firstTimestamp = ts
	}
	ch.last = seq
	ch.bytes += int64(len(rec))
	ch.lastTimestamp = ts
	ch.activityNanos = a.now

	drop := uint64(0)
	if maxMsgs := ch.limits.MaxMsgs; maxMsgs > 0 && ch.count() > uint64(maxMsgs) {
		drop = ch.count() - uint64(maxMsgs)
	}
	if maxBytes := ch.limits.MaxBytes; maxBytes > 0 {
		b := ch.bytes
		for i := uint64(0); i < drop; i++ {
			_, size := a.s.statMsg(ch, ch.first+i)
			b -= size
		}
		// Keep at least the new message, whatever its size.
		for b > maxBytes && drop < ch.count()-1 {
			_, size := a.s.statMsg(ch, ch.first+drop)
			b -= size
			drop++
		}
	}
	a.trimTo(ch, ch.first+drop)
	return ch.last
}

// trimTo removes every message below seq and forgets them in the pending
// lists: a message removed by limits is implicitly acked.
func (a *applier) trimTo(ch *channel, seq uint64) {
	if seq <= ch.first {
		return
	}
	if seq > ch.last+1 {
		panic(fmt.Sprintf("statemachine: trim channel %q to %d beyond last %d", ch.name, seq, ch.last))
	}
	for q := ch.first; q < seq; q++ {
		_, size := a.s.statMsg(ch, q)
		ch.bytes -= size
	}
	if seq <= ch.last {
		ch.firstTimestamp, _ = a.s.statMsg(ch, seq)
	}
	ch.first = seq
	if a.s.own != nil {
		if err := a.s.own.TrimBefore(ch.log, seq); err != nil {
			logFailure("trim %s: %w", ch.log, err)
		}
	}
	for _, sb := range ch.subs {
		for q := range sb.pending {
			if q < seq {
				delete(sb.pending, q)
			}
		}
	}
}

// expire removes the messages older than the channel's MaxAge.
func (a *applier) expire(name string) {
	ch, ok := a.s.channels[name]
	if !ok || ch.limits.MaxAgeNanos <= 0 {
		return
	}
	if ch.first <= ch.last && ch.firstTimestamp+ch.limits.MaxAgeNanos <= a.now {
		// Timestamps are monotonic: the first message younger than
		// MaxAge bounds what goes.
		seq, ok := a.s.msgs.SeqAtOrAfter(ch.log, a.now-ch.limits.MaxAgeNanos+1)
		if !ok {
			seq = ch.last + 1
		}
		a.trimTo(ch, min(max(seq, ch.first), ch.last+1))
	}
	// Expiry may unstall subscribers whose pending messages were dropped.
	a.deliverChannel(ch)
}

// inactiveDue reports whether the channel has had no online subscription and
// no publish for MaxInactivity at now.
func (ch *channel) inactiveDue(now int64) bool {
	return ch.limits.MaxInactivityNanos > 0 && ch.onlineSubs() == 0 && now-ch.activityNanos >= ch.limits.MaxInactivityNanos
}

// deleteInactive deletes a channel that is still inactive. Its offline
// durables and durable queue shadows go with it, as in nats-streaming-server.
func (a *applier) deleteInactive(name string) {
	ch, ok := a.s.channels[name]
	if !ok || !ch.inactiveDue(a.now) {
		return
	}
	for _, sb := range sortedSubs(ch.subs) {
		delete(a.s.subs, sb.id)
	}
	delete(a.s.channels, name)
	delete(a.s.byLower, lower(name))
	if a.s.own != nil {
		a.s.own.drop(ch.log)
	}
}

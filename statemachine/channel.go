package statemachine

import (
	"fmt"

	"github.com/stanza-io/stanza/statemachine/pb"
)

// channel is a FIFO message log. It holds sequences first..last; an empty
// channel has first == last+1 (a new one: first 1, last 0).
type channel struct {
	name          string
	limits        ChannelLimits
	first, last   uint64
	msgs          []storedMsg // msgs[i] has sequence first+i
	bytes         int64       // sum of msgs[i].size
	lastTimestamp int64
	activityNanos int64 // last publish or subscription change, for MaxInactivity

	subs     map[uint64]*sub        // every subscription record of the channel
	durables map[string]*sub        // plain durables by clientID + "-" + durableName
	queues   map[string]*queueGroup // by group name ("durable:group" for durable groups)
}

type storedMsg struct {
	data      []byte
	reply     string
	timestamp int64
	size      int64
}

// msgSize is what a message counts against MaxBytes: its encoded MsgProto.
func msgSize(name string, m storedMsg, seq uint64) int64 {
	return int64(protoSize(&pb.MsgProto{Sequence: seq, Subject: name, Reply: m.reply, Data: m.data, Timestamp: m.timestamp}))
}

func (ch *channel) msg(seq uint64) (storedMsg, bool) {
	if seq < ch.first || seq > ch.last {
		return storedMsg{}, false
	}
	return ch.msgs[seq-ch.first], true
}

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
	ch := newChannel(name, a.s.cfg.Limits.For(name))
	ch.activityNanos = a.now
	a.s.channels[name] = ch
	a.s.byLower[lower(name)] = ch
	return ch, ""
}

func newChannel(name string, limits ChannelLimits) *channel {
	return &channel{name: name, limits: limits, first: 1, subs: map[uint64]*sub{}, durables: map[string]*sub{}, queues: map[string]*queueGroup{}}
}

// append stores a message, stamping its sequence and a timestamp clamped to
// be monotonic in the channel, then enforces MaxMsgs and MaxBytes.
func (a *applier) append(ch *channel, data []byte, reply string) uint64 {
	ts := a.now
	if ts < ch.lastTimestamp {
		ts = ch.lastTimestamp
	}
	ch.last++
	m := storedMsg{data: append([]byte(nil), data...), reply: reply, timestamp: ts}
	m.size = msgSize(ch.name, m, ch.last)
	ch.msgs = append(ch.msgs, m)
	ch.bytes += m.size
	ch.lastTimestamp = ts
	ch.activityNanos = a.now

	drop := uint64(0)
	if maxMsgs := ch.limits.MaxMsgs; maxMsgs > 0 && len(ch.msgs) > maxMsgs {
		drop = uint64(len(ch.msgs) - maxMsgs)
	}
	if maxBytes := ch.limits.MaxBytes; maxBytes > 0 {
		b := ch.bytes
		for i := uint64(0); i < drop; i++ {
			b -= ch.msgs[i].size
		}
		// Keep at least the new message, whatever its size.
		for b > maxBytes && drop < uint64(len(ch.msgs))-1 {
			b -= ch.msgs[drop].size
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
	n := seq - ch.first
	for i := uint64(0); i < n; i++ {
		ch.bytes -= ch.msgs[i].size
	}
	rest := ch.msgs[n:]
	if cap(rest) > 64 && len(rest) < cap(rest)/4 {
		rest = append([]storedMsg(nil), rest...) // let the trimmed prefix be collected
	}
	ch.msgs = rest
	ch.first = seq
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
	seq := ch.first
	for seq <= ch.last && ch.msgs[seq-ch.first].timestamp+ch.limits.MaxAgeNanos <= a.now {
		seq++
	}
	a.trimTo(ch, seq)
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
}

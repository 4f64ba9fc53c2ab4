package statemachine

// Read-only queries for monitoring. None of them changes the state, and every
// list comes out in a deterministic order (sorted names, then subscription
// IDs), so two replicas at the same applied index answer the same.

// SubInfo is the public view of one subscription record: online, an offline
// durable, or the shadow of a durable queue group with no member. The fields
// follow nats-streaming-server's Subscriptionz.
type SubInfo struct {
	ID       uint64
	Channel  string
	ClientID string // kept while offline
	Inbox    string // empty while offline
	AckInbox string // empty while offline
	// DurableName is the durable name of a durable subscription or of a
	// durable queue group's member.
	DurableName string
	// QueueName is the group name: "durable:group" for durable groups.
	QueueName    string
	IsDurable    bool
	IsOffline    bool
	MaxInflight  int32
	AckWaitNanos int64
	// LastSent is the last sequence sent: the group's for a queue member,
	// since members share it.
	LastSent     uint64
	PendingCount int
	IsStalled    bool
}

func (sb *sub) info() SubInfo {
	si := SubInfo{
		ID: sb.id, Channel: sb.ch.name, ClientID: sb.clientID, Inbox: sb.inbox, AckInbox: sb.ackInbox,
		DurableName: sb.durableName, IsDurable: sb.durableName != "", IsOffline: sb.offline,
		MaxInflight: sb.maxInflight, AckWaitNanos: sb.ackWaitNanos, LastSent: sb.lastSent,
		PendingCount: len(sb.pending), IsStalled: sb.stalled(),
	}
	if g := sb.group; g != nil {
		si.QueueName = g.name
		si.LastSent = g.lastSent
	}
	return si
}

// Totals returns the number of messages and bytes stored in every channel.
func (s *State) Totals() (msgs int, bytes int64) {
	for _, ch := range s.channels {
		msgs += int(ch.count())
		bytes += ch.bytes
	}
	return msgs, bytes
}

// NumSubscriptions counts every subscription record, offline durables and
// durable queue shadows included, as nats-streaming-server's serverz does.
func (s *State) NumSubscriptions() int { return len(s.subs) }

// NumClients counts the registered clients.
func (s *State) NumClients() int { return len(s.clients) }

// NumChannels counts the channels.
func (s *State) NumChannels() int { return len(s.channels) }

// ChannelSubs returns every subscription record of the channel, offline
// durables and shadows included, by subscription ID; nil for an unknown
// channel.
func (s *State) ChannelSubs(name string) []SubInfo {
	ch, ok := s.channels[name]
	if !ok {
		return nil
	}
	return subInfos(ch.subs)
}

// ClientSubs returns the online subscriptions of the client, by
// subscription ID; nil for an unknown client.
func (s *State) ClientSubs(id string) []SubInfo {
	c, ok := s.clients[id]
	if !ok {
		return nil
	}
	return subInfos(c.subs)
}

func subInfos(m map[uint64]*sub) []SubInfo {
	subs := sortedSubs(m)
	out := make([]SubInfo, 0, len(subs))
	for _, sb := range subs {
		out = append(out, sb.info())
	}
	return out
}

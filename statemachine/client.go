package statemachine

import (
	"sort"

	"github.com/stanza-io/stanza/statemachine/pb"
)

type client struct {
	id           string
	hbInbox      string
	connID       []byte
	protocol     int32
	pingInterval int32
	pingMaxOut   int32
	failedHB     bool
	subs         map[uint64]*sub // online subscriptions of this client
}

func (c *client) view() Client {
	return Client{ID: c.id, HbInbox: c.hbInbox, ConnID: append([]byte(nil), c.connID...), Protocol: c.protocol,
		PingInterval: c.pingInterval, PingMaxOut: c.pingMaxOut, FailedHB: c.failedHB}
}

// ValidateConnect returns the rejection of a connect request that fails
// before the state is consulted (empty heartbeat inbox, bad client ID).
func ValidateConnect(req *pb.ConnectRequest) string {
	if req.GetHeartbeatInbox() == "" {
		return ErrInvalidConnReq
	}
	if !ValidClientID(req.GetClientID()) {
		return ErrInvalidClientID
	}
	return ""
}

func (a *applier) connect(op *pb.Connect) {
	req := op.GetRequest()
	if e := ValidateConnect(req); e != "" {
		a.res.Err = e
		return
	}
	if old, ok := a.s.clients[req.GetClientID()]; ok {
		if !op.GetReplace() {
			a.res.Err = ErrInvalidClient
			return
		}
		a.closeClient(old)
	}
	if len(req.GetConnID()) > 0 {
		if _, taken := a.s.byConnID[string(req.GetConnID())]; taken {
			// Two live clients cannot share a connection ID: publishes are
			// validated by it.
			a.res.Err = ErrInvalidConnReq
			return
		}
	}
	c := &client{
		id: req.GetClientID(), hbInbox: req.GetHeartbeatInbox(), connID: append([]byte(nil), req.GetConnID()...),
		protocol: req.GetProtocol(), pingInterval: req.GetPingInterval(), pingMaxOut: req.GetPingMaxOut(),
		subs: map[uint64]*sub{},
	}
	a.s.clients[c.id] = c
	if len(c.connID) > 0 {
		a.s.byConnID[string(c.connID)] = c
	}
}

// closeRequest closes client id; with hbInbox set, only the connection of
// that heartbeat inbox (a close for a replaced one is a no-op).
func (a *applier) closeRequest(id, hbInbox string) {
	c, ok := a.s.clients[id]
	if !ok {
		a.res.Err = ErrUnknownClient
		return
	}
	if hbInbox != "" && c.hbInbox != hbInbox {
		return
	}
	a.closeClient(c)
}

// closeClient removes a client: plain subscriptions go away, durables go
// offline, queue members leave their group (a durable group keeps a shadow
// when its last member leaves).
func (a *applier) closeClient(c *client) {
	for _, sb := range sortedSubs(c.subs) {
		a.closeSub(sb, false)
	}
	delete(a.s.clients, c.id)
	if len(c.connID) > 0 && a.s.byConnID[string(c.connID)] == c {
		delete(a.s.byConnID, string(c.connID))
	}
	a.res.Closed = append(a.res.Closed, c.id)
}

// clientHealth marks client id's heartbeats as failing or not. The leader
// names the connection it heartbeated (hbInbox): a mark meant for a
// connection replaced since (the same ID reconnected) would otherwise stop
// the new connection's redeliveries until one of its heartbeats failed.
func (a *applier) clientHealth(id, hbInbox string, failed bool) {
	if c, ok := a.s.clients[id]; ok && (hbInbox == "" || c.hbInbox == hbInbox) {
		c.failedHB = failed
	}
}

func sortedSubs(m map[uint64]*sub) []*sub {
	out := make([]*sub, 0, len(m))
	for _, sb := range m {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

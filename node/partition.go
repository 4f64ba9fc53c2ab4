package node

import (
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
)

// Channel partitioning, as nats-streaming-server has it: several servers
// share one cluster ID on one NATS, each configured with its own channels
// (Config.Partitions). Each receives publishes only on its channels'
// subjects, and answers subscription requests only for its channels,
// leaving the others to the server that has them; every server registers
// every client, and the client goes on with the first connect reply it
// gets. Nothing is replicated between them.
//
// So a client may publish to, or subscribe on, a server that has not seen
// its connect request yet: the request that won the race came from
// another server, and the connect and the publish reach this one on
// different subscriptions. Such a request waits, for up to
// clientWaitNanos, for the client's connect to be applied.

// clientWaitNanos is how long a partitioned server holds a publish or
// subscription request from a client it does not know
// (nats-streaming-server's clientCheckTimeout).
const clientWaitNanos = 1_000_000_000

type heldRequest struct {
	m             Msg
	clientID      string
	deadlineNanos int64
}

func (c *Core) partitioned() bool { return len(c.cfg.Partitions) > 0 }

// serves reports whether this server has channel: always, unless it is
// partitioned.
func (c *Core) serves(channel string) bool {
	if !c.partitioned() {
		return true
	}
	for _, p := range c.cfg.Partitions {
		if statemachine.MatchChannel(p, channel) {
			return true
		}
	}
	return false
}

// hold keeps m, a request from clientID, when this partitioned server does
// not know the client yet, or holds an earlier request from it (a client's
// requests keep their order). It reports whether it kept it.
func (c *Core) hold(nowNanos int64, m Msg, clientID string) bool {
	if !c.partitioned() || c.releasing {
		return false
	}
	if c.heldFor[clientID] == 0 {
		if _, ok := c.sm.ClientByID(clientID); ok {
			return false
		}
	}
	if c.heldFor == nil {
		c.heldFor = map[string]int{}
	}
	c.held = append(c.held, heldRequest{m: m, clientID: clientID, deadlineNanos: nowNanos + clientWaitNanos})
	c.heldFor[clientID]++
	return true
}

// releaseHeld handles, in arrival order, the held requests whose client is
// known now or whose wait is over (those then fail as from an unknown
// client). A client's requests after one that still waits wait too.
func (c *Core) releaseHeld(nowNanos int64) {
	if len(c.held) == 0 {
		return
	}
	var waiting map[string]bool
	kept := c.held[:0]
	for _, h := range c.held {
		if !waiting[h.clientID] {
			_, known := c.sm.ClientByID(h.clientID)
			if known || h.deadlineNanos <= nowNanos {
				if c.heldFor[h.clientID]--; c.heldFor[h.clientID] == 0 {
					delete(c.heldFor, h.clientID)
				}
				if !known && h.m.Subject == c.subj.Sub {
					// nats-streaming-server's answer to a subscription
					// whose connection was not created (yet).
					c.respond(h.m.Reply, &pb.SubscriptionResponse{Error: statemachine.ErrInvalidSubReq})
					continue
				}
				c.releasing = true
				c.request(nowNanos, h.m)
				c.releasing = false
				continue
			}
			if waiting == nil {
				waiting = map[string]bool{}
			}
			waiting[h.clientID] = true
		}
		kept = append(kept, h)
	}
	clear(c.held[len(kept):])
	c.held = kept
}

// releaseApplied releases held requests after a batch was applied, and
// reports whether that queued commands to propose.
func (c *Core) releaseApplied(nowNanos int64) bool {
	if len(c.held) == 0 {
		return false
	}
	n := len(c.queue)
	c.releaseHeld(nowNanos)
	return len(c.queue) > n
}

// seenConnsMax bounds the connections a partitioned server remembers.
const seenConnsMax = 1 << 16

// rememberConn notes a connection this partitioned server registered.
func (c *Core) rememberConn(connID []byte) {
	if !c.partitioned() || len(connID) == 0 || c.seenConns[string(connID)] {
		return
	}
	if c.seenConns == nil {
		c.seenConns = map[string]bool{}
	}
	key := string(connID)
	c.seenConns[key] = true
	c.seenOrder = append(c.seenOrder, key)
	if len(c.seenOrder) > seenConnsMax {
		delete(c.seenConns, c.seenOrder[0])
		c.seenOrder = c.seenOrder[1:]
	}
}

// answersUnknownPing reports whether a ping from connID, which this server
// does not have, gets the error that closes the client. A partitioned
// server says so only of a connection it had (replaced or closed here):
// the others may have a connection it never saw (it started after the
// client, or restarted on a MEMORY store), and one such answer would close
// a client that every other server serves. nats-streaming-server answers
// the error in both cases.
func (c *Core) answersUnknownPing(connID []byte) bool {
	return !c.partitioned() || c.seenConns[string(connID)]
}

package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// A simulated STAN client speaking the real wire protocol through the
// simulated bus: connect, publish (sync or async, retrying after timeouts),
// subscribe (plain, durable, queue, durable queue), ack (promptly, slowly or
// never), close, and crash.
type client struct {
	w      *World
	r      *rand.Rand
	id     string
	ep     endpoint
	async  bool // up to asyncMax publishes outstanding, else one
	gen    int  // process generation: a crashed client comes back as a new process
	nInbox int

	state        clientState
	crashedUntil int64
	connID       []byte
	connectInbox string
	deadline     int64 // of the connect or close request
	resp         *pb.ConnectResponse
	pubs         map[string]*pubOp // outstanding publishes by guid
	nPub         int
	subs         []*simSub
	requests     map[string]*subRequest // sub/unsub/close replies by inbox
	nextPing     int64
}

type clientState int

const (
	disconnected clientState = iota
	connecting
	connected
	closing
	crashed
)

const (
	requestTimeoutNanos = 2_000_000_000
	pingIntervalNanos   = 1_000_000_000
	pubAckWaitNanos     = 4_000_000_000
	asyncMax            = 8
)

type pubOp struct {
	op       int // index in the history
	guid     string
	deadline int64
}

type subKind int

const (
	plainSub subKind = iota
	durableSub
	queueSub
	durableQueueSub
)

func (k subKind) String() string {
	return [...]string{"plain", "durable", "queue", "durable-queue"}[k]
}

type ackMode int

const (
	ackPrompt ackMode = iota
	ackSlow
	ackNever
)

// simSub is one subscription instance (a durable's resumes are new
// instances of the same identity).
type simSub struct {
	id       int // instance, unique in the run
	identity string
	kind     subKind
	channel  string
	durable  string
	queue    string
	inbox    string
	ackInbox string
	state    subState
	ack      ackMode
	toAck    []pendingAck
	start    pb.StartPosition
}

type subState int

const (
	subscribing subState = iota
	active
	unsubscribing
	ended
)

type pendingAck struct {
	seq uint64
	at  int64
}

type subRequest struct {
	sub      *simSub
	kind     string // "sub", "unsub", "subclose", "close"
	deadline int64
}

func (c *client) inbox() string {
	c.nInbox++
	return fmt.Sprintf("_INBOX.%s.%d.%d", c.id, c.gen, c.nInbox)
}

func (c *client) listen() {
	if c.state == crashed {
		c.w.net.setSubs(c.ep, nil)
		return
	}
	c.w.net.setSubs(c.ep, []string{fmt.Sprintf("_INBOX.%s.%d.>", c.id, c.gen)})
}

func (c *client) send(subject, reply string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	c.w.net.publish(c.w.now, c.ep, subject, reply, data)
}

// step is the client's turn: time out what is overdue, then maybe act.
func (c *client) step(liveness bool) {
	now := c.w.now
	if c.state == crashed {
		if now < c.crashedUntil {
			return
		}
		c.gen++
		c.state = disconnected
		c.w.tracef("client %s restarts (generation %d)", c.id, c.gen)
		c.listen()
	}
	if !liveness && c.w.faults.ClientCrash > 0 && c.r.Float64() < c.w.faults.ClientCrash {
		c.crash()
		return
	}
	c.expire(now)
	live := c.subs[:0]
	for _, s := range c.subs {
		if s.state != ended {
			live = append(live, s)
		}
	}
	c.subs = live
	switch c.state {
	case disconnected:
		if c.r.IntN(20) == 0 || liveness {
			c.connect()
		}
	case connected:
		c.act(liveness)
	}
}

func (c *client) crash() {
	c.w.tracef("client %s crashes", c.id)
	c.state = crashed
	c.crashedUntil = c.w.now + int64(50+c.r.IntN(400))*stepNanos
	c.abandon()
	c.listen()
}

// abandon gives up on everything outstanding: publishes become
// indefinite, subscriptions end (durables stay on the server).
func (c *client) abandon() {
	for _, g := range sortedKeys(c.pubs) {
		c.w.hist.indefinite(c.pubs[g].op)
	}
	c.pubs = map[string]*pubOp{}
	for _, s := range c.subs {
		s.state = ended
	}
	c.subs = nil
	c.requests = map[string]*subRequest{}
	c.resp = nil
}

func (c *client) expire(now int64) {
	if (c.state == connecting || c.state == closing) && now >= c.deadline {
		c.w.tracef("client %s: %s request timed out", c.id, map[clientState]string{connecting: "connect", closing: "close"}[c.state])
		c.state = disconnected
		c.abandon()
	}
	for _, g := range sortedKeys(c.pubs) {
		p := c.pubs[g]
		if now >= p.deadline {
			c.w.hist.indefinite(p.op)
			delete(c.pubs, g)
			if c.state == connected && c.r.IntN(2) == 0 {
				// The application retries. STAN has no de-duplication: the
				// retry is a new message, and both may be stored.
				orig := c.w.hist.pubs[p.op]
				c.publishPayload(orig.channel, orig.payload+"+retry")
			}
		}
	}
	for _, in := range sortedKeys(c.requests) {
		rq := c.requests[in]
		if now < rq.deadline {
			continue
		}
		delete(c.requests, in)
		if rq.sub != nil && rq.sub.state != ended {
			if rq.kind == "sub" && c.resp != nil {
				// As stan.go does: tell the server to drop the subscription
				// it may have created, by delivery inbox.
				c.send(c.resp.SubCloseRequests, "", &pb.UnsubscribeRequest{ClientID: c.id, Subject: rq.sub.channel, Inbox: rq.sub.inbox})
			}
			rq.sub.state = ended
		}
	}
}

func (c *client) connect() {
	c.gen++
	c.listen()
	c.connID = []byte(fmt.Sprintf("%s-conn-%d", c.id, c.gen))
	c.connectInbox = c.inbox()
	c.state = connecting
	c.deadline = c.w.now + requestTimeoutNanos
	c.send(c.w.subjects.Discover, c.connectInbox, &pb.ConnectRequest{ClientID: c.id, HeartbeatInbox: c.hbInbox(), Protocol: 1, ConnID: c.connID})
}

func (c *client) hbInbox() string { return fmt.Sprintf("_INBOX.%s.%d.hb", c.id, c.gen) }

func (c *client) pubAckInbox() string { return fmt.Sprintf("_INBOX.%s.%d.acks", c.id, c.gen) }

func (c *client) pingInbox() string { return fmt.Sprintf("_INBOX.%s.%d.ping", c.id, c.gen) }

// lost ends a session the server no longer knows (its ping says so, or a
// request says "unknown clientID"), as a stan.go application does on its
// connection-lost handler: drop everything and connect again.
func (c *client) lost(why string) {
	c.w.tracef("client %s lost its session: %s", c.id, why)
	c.state = disconnected
	c.abandon()
}

func (c *client) act(liveness bool) {
	now := c.w.now
	if now >= c.nextPing && c.resp.PingRequests != "" {
		c.nextPing = now + pingIntervalNanos
		c.send(c.resp.PingRequests, c.pingInbox(), &pb.Ping{ConnID: c.connID})
	}
	for _, s := range c.subs {
		if liveness {
			s.ack = ackPrompt // what was never acked comes back after AckWait, and is acked
		}
		c.flushAcks(s, now, liveness)
	}
	if liveness {
		// Drain: every subscriber acks everything; offline durables come back.
		c.resumeDurables(true)
		return
	}
	max := 1
	if c.async {
		max = asyncMax
	}
	if len(c.pubs) < max && c.r.IntN(3) == 0 {
		c.publish()
	}
	switch k := c.r.IntN(1000); {
	case k < 8 && len(c.subs) < 3:
		c.subscribe()
	case k < 10:
		c.endSub(true)
	case k < 12:
		c.endSub(false)
	case k < 14:
		c.resumeDurables(false)
	case k < 15:
		c.close()
	}
}

func (c *client) publish() {
	c.nPub++
	c.publishPayload(c.w.channels[c.r.IntN(len(c.w.channels))], fmt.Sprintf("%s/%d", c.id, c.nPub))
}

func (c *client) publishPayload(ch, payload string) {
	c.nPub++
	guid := fmt.Sprintf("%s-%d-g%d", c.id, c.gen, c.nPub)
	op := c.w.hist.publish(c.id, ch, payload)
	c.pubs[guid] = &pubOp{op: op, guid: guid, deadline: c.w.now + pubAckWaitNanos}
	c.send(c.resp.PubPrefix+"."+ch, c.pubAckInbox(), &pb.PubMsg{ClientID: c.id, Guid: guid, Subject: ch, Data: []byte(payload), ConnID: c.connID})
}

func (c *client) subscribe() {
	ch := c.w.channels[c.r.IntN(len(c.w.channels))]
	s := &simSub{id: c.w.nextSubInstance(), kind: subKind(c.r.IntN(4)), channel: ch, inbox: c.inbox(), ack: ackMode(c.r.IntN(3))}
	if s.ack == ackNever && c.r.IntN(2) == 0 {
		s.ack = ackPrompt
	}
	s.start = pb.StartPosition_First
	switch s.kind {
	case plainSub:
		s.start = []pb.StartPosition{pb.StartPosition_NewOnly, pb.StartPosition_First, pb.StartPosition_LastReceived}[c.r.IntN(3)]
		s.identity = fmt.Sprintf("plain:%d", s.id)
	case durableSub:
		// Each epoch of a durable (after an unsubscribe) gets its own name:
		// an unsubscribe whose reply is lost may not have happened, and a
		// new durable must not resume the old one.
		k := c.r.IntN(2)
		base := fmt.Sprintf("durable:%s:%s:d%d", c.id, ch, k)
		epoch := c.w.durableEpochs[base]
		s.durable = fmt.Sprintf("d%d-%d", k, epoch)
		s.identity = fmt.Sprintf("%s#%d", base, epoch)
		for _, o := range c.subs {
			if o.identity == s.identity {
				return // already open here
			}
		}
	case queueSub:
		s.queue = "q"
		s.identity = fmt.Sprintf("queue:%s:q:%d", ch, s.id)
	case durableQueueSub:
		s.queue, s.durable = "q", "dq"
		s.identity = fmt.Sprintf("durable-queue:%s:dq:q", ch)
	}
	c.openSub(s)
}

func (c *client) openSub(s *simSub) {
	s.state = subscribing
	c.subs = append(c.subs, s)
	reply := c.inbox()
	c.requests[reply] = &subRequest{sub: s, kind: "sub", deadline: c.w.now + requestTimeoutNanos}
	c.w.tracef("client %s subscribes %s on %s (%s, start %s, ack %d)", c.id, s.identity, s.channel, s.kind, s.start, s.ack)
	c.send(c.resp.SubRequests, reply, &pb.SubscriptionRequest{ClientID: c.id, Subject: s.channel, QGroup: s.queue, Inbox: s.inbox,
		MaxInFlight: int32(1 + c.r.IntN(16)), AckWaitInSecs: int32(1 + c.r.IntN(3)), DurableName: s.durable, StartPosition: s.start})
}

// resumeDurables reopens durable identities this client had that are not
// open now.
func (c *client) resumeDurables(all bool) {
	for _, identity := range c.w.durablesOf(c.id) {
		open := false
		for _, s := range c.subs {
			open = open || s.identity == identity && s.state != ended
		}
		if open || !all && len(c.subs) >= 4 {
			continue
		}
		d := c.w.durables[identity]
		s := &simSub{id: c.w.nextSubInstance(), identity: identity, kind: d.kind, channel: d.channel, durable: d.durable, queue: d.queue,
			inbox: c.inbox(), ack: ackPrompt, start: pb.StartPosition_First}
		c.openSub(s)
	}
}

func (c *client) endSub(unsubscribe bool) {
	var live []*simSub
	for _, s := range c.subs {
		if s.state == active {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return
	}
	s := live[c.r.IntN(len(live))]
	s.state = unsubscribing
	kind, subject := "subclose", c.resp.SubCloseRequests
	// A durable queue member only leaves (subclose): whether its
	// unsubscribe destroys the group depends on whether it was the last
	// member, which the client cannot know.
	if unsubscribe && s.kind != durableQueueSub {
		kind, subject = "unsub", c.resp.UnsubRequests
		if s.kind == durableSub {
			c.w.forgetDurable(s.identity, c.id)
		}
	}
	reply := c.inbox()
	c.requests[reply] = &subRequest{sub: s, kind: kind, deadline: c.w.now + requestTimeoutNanos}
	c.w.tracef("client %s %s %s", c.id, kind, s.identity)
	c.send(subject, reply, &pb.UnsubscribeRequest{ClientID: c.id, Subject: s.channel, Inbox: s.ackInbox})
}

func (c *client) close() {
	c.state = closing
	c.deadline = c.w.now + requestTimeoutNanos
	reply := c.inbox()
	c.requests[reply] = &subRequest{kind: "close", deadline: c.deadline}
	c.w.tracef("client %s closes", c.id)
	c.send(c.resp.CloseRequests, reply, &pb.CloseRequest{ClientID: c.id})
}

func (c *client) flushAcks(s *simSub, now int64, liveness bool) {
	if s.state != active {
		return
	}
	keep := s.toAck[:0]
	for _, a := range s.toAck {
		if a.at <= now || liveness {
			c.send(s.ackInbox, "", &pb.Ack{Subject: s.channel, Sequence: a.seq})
		} else {
			keep = append(keep, a)
		}
	}
	s.toAck = keep
}

// receive handles one message for this client.
func (c *client) receive(p *packet) {
	if c.state == crashed {
		return
	}
	switch {
	case p.subject == c.hbInbox():
		if p.reply != "" {
			c.w.net.publish(c.w.now, c.ep, p.reply, "", nil) // alive
		}
	case p.subject == c.connectInbox && c.state == connecting:
		resp := &pb.ConnectResponse{}
		if err := proto.Unmarshal(p.data, resp); err != nil {
			c.w.fail(failSafety, "client %s: undecodable ConnectResponse: %v", c.id, err)
			return
		}
		if resp.Error != "" {
			c.w.tracef("client %s connect refused: %s", c.id, resp.Error)
			c.state = disconnected
			return
		}
		c.resp, c.state = resp, connected
		c.pubs, c.requests = map[string]*pubOp{}, map[string]*subRequest{}
		c.w.tracef("client %s connected", c.id)
	case p.subject == c.pingInbox() && c.state == connected:
		resp := &pb.PingResponse{}
		if err := proto.Unmarshal(p.data, resp); err != nil {
			c.w.fail(failSafety, "client %s: undecodable PingResponse: %v", c.id, err)
			return
		}
		if resp.Error != "" {
			c.lost(resp.Error)
		}
	case p.subject == c.pubAckInbox():
		ack := &pb.PubAck{}
		if err := proto.Unmarshal(p.data, ack); err != nil {
			c.w.fail(failSafety, "client %s: undecodable PubAck: %v", c.id, err)
			return
		}
		if op := c.pubs[ack.Guid]; op != nil {
			delete(c.pubs, ack.Guid)
			c.w.hist.acked(op.op, ack.Error)
		}
	default:
		if rq := c.requests[p.subject]; rq != nil {
			delete(c.requests, p.subject)
			c.handleReply(rq, p)
			return
		}
		for _, s := range c.subs {
			if s.inbox == p.subject && s.state != ended {
				c.deliver(s, p)
				return
			}
		}
	}
}

func (c *client) handleReply(rq *subRequest, p *packet) {
	switch rq.kind {
	case "close":
		c.state = disconnected
		c.abandon()
		c.w.tracef("client %s closed", c.id)
	case "sub":
		resp := &pb.SubscriptionResponse{}
		if err := proto.Unmarshal(p.data, resp); err != nil {
			c.w.fail(failSafety, "client %s: undecodable SubscriptionResponse: %v", c.id, err)
			return
		}
		if resp.Error != "" {
			c.w.tracef("client %s subscribe %s refused: %s", c.id, rq.sub.identity, resp.Error)
			rq.sub.state = ended
			if resp.Error == statemachine.ErrUnknownClient {
				c.lost(resp.Error)
				return
			}
			if resp.Error == statemachine.ErrDupDurable {
				// The durable is online under this client from a subscribe
				// whose reply was lost: closing the connection takes it off
				// line, and the client comes back.
				c.close()
			}
			return
		}
		rq.sub.ackInbox, rq.sub.state = resp.AckInbox, active
		if rq.sub.kind == durableSub || rq.sub.kind == durableQueueSub {
			c.w.rememberDurable(rq.sub, c.id)
		}
	default:
		rq.sub.state = ended
	}
}

func (c *client) deliver(s *simSub, p *packet) {
	m := &pb.MsgProto{}
	if err := proto.Unmarshal(p.data, m); err != nil {
		c.w.fail(failSafety, "client %s: undecodable MsgProto: %v", c.id, err)
		return
	}
	c.w.hist.delivery(c.id, s, m, p.from)
	c.w.tracef("client %s got %s %s seq %d redelivered=%v from n%d", c.id, s.identity, s.channel, m.Sequence, m.Redelivered, p.from)
	if s.state != active {
		return // stan.go drops messages that arrive before the SubscriptionResponse
	}
	switch s.ack {
	case ackPrompt:
		s.toAck = append(s.toAck, pendingAck{seq: m.Sequence, at: c.w.now})
	case ackSlow:
		s.toAck = append(s.toAck, pendingAck{seq: m.Sequence, at: c.w.now + int64(c.r.IntN(300))*stepNanos})
	}
}

package node

import (
	"strconv"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Limits on what one raft entry carries.
const (
	publishBatchMsgsMax  = 4096
	publishBatchBytesMax = 4 << 20
	acksBatchMax         = 8192
)

// request handles a client request while serving: decode, validate what can
// be validated without the state, and queue a command.
func (c *Core) request(nowNanos int64, m Msg) {
	switch {
	case under(m.Subject, c.subj.PubPrefix):
		c.publishRequest(nowNanos, m)
	case under(m.Subject, c.subj.AckPrefix):
		ack, err := statemachine.DecodeAck(m.Data)
		if err != nil {
			c.log.Debug("dropping malformed ack", "subject", m.Subject, "err", err)
			return
		}
		c.queueAck(m.Subject, ack)
	case m.Subject == c.subj.Discover:
		c.connectRequest(nowNanos, m)
	case m.Subject == c.subj.Pings:
		c.pingRequest(nowNanos, m)
	case m.Subject == c.subj.Sub:
		req := &pb.SubscriptionRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			c.respond(m.Reply, &pb.SubscriptionResponse{Error: statemachine.ErrInvalidSubReq})
			return
		}
		if e := statemachine.ValidateSubscribe(req); e != "" {
			c.respond(m.Reply, &pb.SubscriptionResponse{Error: e})
			return
		}
		// Partitioned: another server may have the channel, and the client
		// times out if none does.
		if !c.serves(req.GetSubject()) || c.hold(nowNanos, m, req.GetClientID()) {
			return
		}
		c.nAck++
		ackInbox := c.subj.AckPrefix + "." + strconv.FormatUint(c.id, 16) + "x" + strconv.FormatUint(c.term, 10) + "." + strconv.FormatUint(c.nAck, 10)
		c.queue = append(c.queue, &pb.Command{ReplyTo: m.Reply, ReplaceDurable: c.cfg.ReplaceDurable,
			Op: &pb.Command_Subscribe{Subscribe: &pb.Subscribe{Request: req, AckInbox: ackInbox}}})
	case m.Subject == c.subj.Unsub || m.Subject == c.subj.SubClose:
		req := &pb.UnsubscribeRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			c.respond(m.Reply, &pb.SubscriptionResponse{Error: statemachine.ErrInvalidUnsubReq})
			return
		}
		if !c.serves(req.GetSubject()) {
			return
		}
		c.queue = append(c.queue, &pb.Command{ReplyTo: m.Reply, Op: &pb.Command_Unsubscribe{Unsubscribe: &pb.Unsubscribe{
			Request: req, CloseOnly: m.Subject == c.subj.SubClose}}})
	case m.Subject == c.subj.NodeAdd || m.Subject == c.subj.NodeRemove:
		if err := c.ChangeMembership(m.Subject == c.subj.NodeAdd, string(m.Data), m.Reply); err != nil {
			if m.Reply != "" {
				c.out(m.Reply, "", []byte("-ERR "+err.Error()))
			}
		}
	case m.Subject == c.subj.Close:
		req := &pb.CloseRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			c.respond(m.Reply, &pb.CloseResponse{Error: statemachine.ErrInvalidCloseReq})
			return
		}
		c.queue = append(c.queue, &pb.Command{ReplyTo: m.Reply, Op: &pb.Command_Close{Close: &pb.CloseClient{ClientID: req.GetClientID()}}})
	}
}

// pubSlabMsgs is how many PubMsgs the leader allocates at once: the ones
// of a batch are applied, and let go, together.
const pubSlabMsgs = 64

func (c *Core) publishRequest(nowNanos int64, m Msg) {
	open := c.openPublish()
	var prev *pb.PubMsg
	if open != nil && len(open.Msgs) > 0 {
		prev = open.Msgs[len(open.Msgs)-1]
	}
	if len(c.pubSlab) == 0 {
		c.pubSlab = make([]pb.PubMsg, pubSlabMsgs)
	}
	msg := &c.pubSlab[0]
	c.pubSlab = c.pubSlab[1:]
	if err := statemachine.DecodePubMsgInto(msg, m.Data, prev); err != nil {
		c.respond(m.Reply, &pb.PubAck{Error: statemachine.ErrInvalidPubReq})
		return
	}
	if e := statemachine.ValidatePublish(msg); e != "" {
		c.respond(m.Reply, &pb.PubAck{Guid: msg.GetGuid(), Error: e})
		return
	}
	if c.partitioned() {
		// The channel is PubMsg.subject, whatever subject the message came
		// on: a partitioned server refuses one it does not have.
		if !c.serves(msg.GetSubject()) {
			c.respond(m.Reply, &pb.PubAck{Guid: msg.GetGuid(), Error: statemachine.ErrInvalidPubReq})
			return
		}
		if c.hold(nowNanos, m, msg.GetClientID()) {
			return
		}
	}
	if c.planted(statemachine.BugPubAckBeforeCommit) {
		c.respond(m.Reply, &pb.PubAck{Guid: msg.GetGuid()})
	}
	// The entry carries the client's PubMsg bytes as they came: a PubMsg
	// field of the Publish command is those bytes, framed (see
	// encodePublishCommand), so nothing is encoded again.
	if open != nil && len(open.Msgs) < publishBatchMsgsMax && c.pubRaw.bytes < publishBatchBytesMax {
		open.Msgs = append(open.Msgs, msg)
		open.AckSubjects = append(open.AckSubjects, m.Reply)
		c.pubRaw.add(m.Data)
		return
	}
	if len(c.cmdSlab) == 0 {
		c.cmdSlab = make([]publishSlot, pubSlabMsgs)
	}
	slot := &c.cmdSlab[0]
	c.cmdSlab = c.cmdSlab[1:]
	slot.msgs[0], slot.acks[0] = msg, m.Reply
	slot.pub.Msgs, slot.pub.AckSubjects = slot.msgs[:], slot.acks[:]
	slot.op.Publish = &slot.pub
	slot.cmd.Op = &slot.op
	cmd := &slot.cmd
	c.queue = append(c.queue, cmd)
	slot.raw.cmd, slot.raw.msgs = cmd, slot.rawMsgs[:0]
	c.pubRaw = &slot.raw
	c.pubRaw.add(m.Data)
	c.raws = append(c.raws, c.pubRaw)
}

// publishSlot holds a new Publish command of one message and what the
// leader keeps beside it, allocated pubSlabMsgs at a time: a lone publish
// costs one allocation of them in 64, not seven. A batch that grows past
// one message appends beyond the arrays as any slice does.
type publishSlot struct {
	cmd     pb.Command
	op      pb.Command_Publish
	pub     pb.Publish
	msgs    [1]*pb.PubMsg
	acks    [1]string
	raw     rawPublish
	rawMsgs [1][]byte
}

// openPublish is the Publish command last queued, which a publish may
// join, or nil when the queue ends with anything else.
func (c *Core) openPublish() *pb.Publish {
	n := len(c.queue)
	if n == 0 || c.pubRaw == nil || c.queue[n-1] != c.pubRaw.cmd {
		return nil
	}
	if p, ok := c.queue[n-1].Op.(*pb.Command_Publish); ok {
		return p.Publish
	}
	return nil
}

// rawPublish is the client's bytes of each PubMsg of a queued Publish
// command, in order.
type rawPublish struct {
	cmd   *pb.Command
	msgs  [][]byte
	bytes int
}

func (r *rawPublish) add(data []byte) {
	r.msgs = append(r.msgs, data)
	r.bytes += len(data)
}

// commandHeader starts a Command as proto.Marshal writes it: nowNanos,
// then the tag and length of the op field (a single-byte tag: ops are
// fields 2 to 11), with room for the op's inner bytes.
func commandHeader(nowNanos int64, op protowire.Number, inner int) []byte {
	n := 1 + protowire.SizeBytes(inner)
	if nowNanos != 0 {
		n += 1 + protowire.SizeVarint(uint64(nowNanos))
	}
	b := make([]byte, 0, n)
	if nowNanos != 0 {
		b = protowire.AppendVarint(append(b, 1<<3|byte(protowire.VarintType)), uint64(nowNanos))
	}
	return protowire.AppendVarint(append(b, byte(op)<<3|byte(protowire.BytesType)), uint64(inner))
}

// encodePublishCommand encodes a Publish command as proto.Marshal would
// with each PubMsg field holding the bytes the client sent: a decoder
// cannot tell them apart from a re-encoding of the decoded PubMsg.
func encodePublishCommand(nowNanos int64, raw [][]byte, ackSubjects []string) []byte {
	inner := 0
	for _, m := range raw {
		inner += 1 + protowire.SizeBytes(len(m))
	}
	for _, s := range ackSubjects {
		inner += 1 + protowire.SizeBytes(len(s))
	}
	b := commandHeader(nowNanos, 4, inner)
	for _, m := range raw {
		b = protowire.AppendBytes(append(b, 1<<3|byte(protowire.BytesType)), m)
	}
	for _, s := range ackSubjects {
		b = protowire.AppendString(append(b, 2<<3|byte(protowire.BytesType)), s)
	}
	return b
}

// encodeAcksCommand is proto.Marshal of an Acks command of runs, by hand: a
// subscriber's every delivery comes back as an ack.
func encodeAcksCommand(nowNanos int64, runs []*pb.AckRun) []byte {
	seqsSize := func(r *pb.AckRun) int {
		n := 0
		for _, q := range r.GetSequences() {
			n += protowire.SizeVarint(q)
		}
		return n
	}
	runSize := func(r *pb.AckRun) int {
		n := 0
		if s := r.GetAckInbox(); s != "" {
			n += 1 + protowire.SizeBytes(len(s))
		}
		if s := r.GetSubject(); s != "" {
			n += 1 + protowire.SizeBytes(len(s))
		}
		if len(r.GetSequences()) > 0 {
			n += 1 + protowire.SizeBytes(seqsSize(r))
		}
		return n
	}
	inner := 0
	for _, r := range runs {
		inner += 1 + protowire.SizeBytes(runSize(r))
	}
	b := commandHeader(nowNanos, 7, inner)
	for _, r := range runs {
		b = protowire.AppendVarint(append(b, 2<<3|byte(protowire.BytesType)), uint64(runSize(r)))
		if s := r.GetAckInbox(); s != "" {
			b = protowire.AppendString(append(b, 1<<3|byte(protowire.BytesType)), s)
		}
		if s := r.GetSubject(); s != "" {
			b = protowire.AppendString(append(b, 2<<3|byte(protowire.BytesType)), s)
		}
		if len(r.GetSequences()) > 0 {
			b = protowire.AppendVarint(append(b, 3<<3|byte(protowire.BytesType)), uint64(seqsSize(r)))
			for _, q := range r.GetSequences() {
				b = protowire.AppendVarint(b, q)
			}
		}
	}
	return b
}

// queueAck adds an ack to the last queued command if it is an Acks command
// with room, to its last run if the ack came on the same inbox for the same
// channel; else it starts a run, or a command.
func (c *Core) queueAck(ackInbox string, ack *pb.Ack) {
	run := func() *pb.AckRun {
		return &pb.AckRun{AckInbox: ackInbox, Subject: ack.GetSubject(), Sequences: []uint64{ack.GetSequence()}}
	}
	if n := len(c.queue); n > 0 && c.queuedAcks < acksBatchMax {
		if a, ok := c.queue[n-1].Op.(*pb.Command_Acks); ok {
			runs := a.Acks.Runs
			if r := runs[len(runs)-1]; r.AckInbox == ackInbox && r.Subject == ack.GetSubject() {
				r.Sequences = append(r.Sequences, ack.GetSequence())
			} else {
				a.Acks.Runs = append(runs, run())
			}
			c.queuedAcks++
			return
		}
	}
	c.queue = append(c.queue, &pb.Command{Op: &pb.Command_Acks{Acks: &pb.Acks{Runs: []*pb.AckRun{run()}}}})
	c.queuedAcks = 1
}

func (c *Core) connectRequest(nowNanos int64, m Msg) {
	req := &pb.ConnectRequest{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		c.respond(m.Reply, &pb.ConnectResponse{Error: statemachine.ErrInvalidConnReq})
		return
	}
	if e := statemachine.ValidateConnect(req); e != "" {
		c.respond(m.Reply, &pb.ConnectResponse{Error: e})
		return
	}
	id := req.GetClientID()
	if c.probing[id] {
		c.respond(m.Reply, &pb.ConnectResponse{Error: statemachine.ErrInvalidClient})
		return
	}
	old, exists := c.sm.ClientByID(id)
	if !exists {
		c.queue = append(c.queue, &pb.Command{ReplyTo: m.Reply, Op: &pb.Command_Connect{Connect: &pb.Connect{Request: req}}})
		return
	}
	// The ID is taken: ask the old client whether it is alive. If it does
	// not answer in time, the new one replaces it.
	c.probing[id] = true
	subject := c.newReplySubject()
	c.waits[subject] = &wait{clientID: id, deadlineNanos: nowNanos + c.cfg.DupProbeNanos, probe: &probe{req: req, replyTo: m.Reply}}
	c.out(old.HbInbox, subject, nil)
}

func (c *Core) pingRequest(nowNanos int64, m Msg) {
	ping := &pb.Ping{}
	if err := proto.Unmarshal(m.Data, ping); err != nil {
		return
	}
	cl, ok := c.sm.ClientByConnID(ping.GetConnID())
	if !ok {
		if c.answersUnknownPing(ping.GetConnID()) {
			c.respond(m.Reply, &pb.PingResponse{Error: statemachine.ErrPingReplaced})
		}
		return
	}
	c.respond(m.Reply, &pb.PingResponse{})
	// A ping proves the client alive: heartbeats that failed are forgiven.
	if h := c.hb[cl.ID]; h != nil && h.failures > 0 {
		h.failures = 0
		h.nextNanos = nowNanos
		c.queue = append(c.queue, healthCommand(cl.ID, cl.HbInbox, false))
	}
}

// healthCommand marks the connection of client id that has heartbeat inbox
// hbInbox: a replaced connection's mark must not reach its successor.
func healthCommand(id, hbInbox string, failed bool) *pb.Command {
	return &pb.Command{Op: &pb.Command_ClientHealth{ClientHealth: &pb.ClientHealth{ClientID: id, HbInbox: hbInbox, Failed: failed}}}
}

func (c *Core) newReplySubject() string {
	c.nReply++
	return c.subj.HBPrefix + "." + strconv.FormatUint(c.id, 16) + "." + strconv.FormatUint(c.term, 10) + "." + strconv.FormatUint(c.nReply, 10)
}

// reply handles an answer to a heartbeat or a duplicate probe.
func (c *Core) reply(nowNanos int64, m Msg) {
	w := c.waits[m.Subject]
	if w == nil || !c.serving {
		return
	}
	delete(c.waits, m.Subject)
	if p := w.probe; p != nil {
		// The old client is alive: the new one is refused.
		delete(c.probing, w.clientID)
		c.respond(p.replyTo, &pb.ConnectResponse{Error: statemachine.ErrInvalidClient})
		return
	}
	h := c.hb[w.clientID]
	if h == nil || h.waiting != m.Subject {
		return
	}
	h.waiting = ""
	if h.failures > 0 {
		h.failures = 0
		c.queue = append(c.queue, healthCommand(w.clientID, w.hbInbox, false))
	}
	_ = nowNanos
}

// tickHeartbeats sends due heartbeats and settles expired waits, in a
// deterministic order.
func (c *Core) tickHeartbeats(nowNanos int64) {
	var expired []string
	for subject, w := range c.waits {
		if w.deadlineNanos <= nowNanos {
			expired = append(expired, subject)
		}
	}
	sortStrings(expired)
	for _, subject := range expired {
		w := c.waits[subject]
		delete(c.waits, subject)
		if p := w.probe; p != nil {
			delete(c.probing, w.clientID)
			c.queue = append(c.queue, &pb.Command{ReplyTo: p.replyTo, Op: &pb.Command_Connect{Connect: &pb.Connect{Request: p.req, Replace: true}}})
			continue
		}
		h := c.hb[w.clientID]
		if h == nil || h.waiting != subject {
			continue
		}
		h.waiting = ""
		h.failures++
		if h.failures == 1 {
			c.queue = append(c.queue, healthCommand(w.clientID, w.hbInbox, true))
		}
		if h.failures > c.cfg.HBFailCount {
			c.log.Info("closing client after failed heartbeats", "client", w.clientID, "failures", h.failures)
			c.queue = append(c.queue, &pb.Command{Op: &pb.Command_Close{Close: &pb.CloseClient{ClientID: w.clientID, HbInbox: w.hbInbox}}})
			delete(c.hb, w.clientID)
		}
	}
	for _, cl := range c.sm.Clients() {
		h := c.hb[cl.ID]
		if h == nil {
			h = &hbState{nextNanos: nowNanos + c.cfg.HBIntervalNanos}
			c.hb[cl.ID] = h
		}
		if h.waiting != "" || nowNanos < h.nextNanos {
			continue
		}
		subject := c.newReplySubject()
		h.waiting = subject
		h.nextNanos = nowNanos + c.cfg.HBIntervalNanos
		c.waits[subject] = &wait{clientID: cl.ID, hbInbox: cl.HbInbox, deadlineNanos: nowNanos + c.cfg.HBTimeoutNanos}
		c.out(cl.HbInbox, subject, nil)
	}
}

// appendPubAck appends proto.Marshal of a PubAck, by hand, to b: one per
// message, into a buffer the core keeps (an Outbox does not keep data).
func appendPubAck(b []byte, guid, errStr string) []byte {
	if guid != "" {
		b = protowire.AppendString(append(b, 1<<3|byte(protowire.BytesType)), guid)
	}
	if errStr != "" {
		b = protowire.AppendString(append(b, 2<<3|byte(protowire.BytesType)), errStr)
	}
	return b
}

func (c *Core) respond(subject string, m proto.Message) {
	if subject == "" {
		return
	}
	data, err := proto.Marshal(m)
	if err != nil {
		c.log.Error("cannot encode reply", "err", err)
		return
	}
	c.out(subject, "", data)
}

// carryOut sends what an applied command decided: the reply, PubAcks, then
// deliveries (a subscriber gets its SubscriptionResponse before any message).
func (c *Core) carryOut(nowNanos int64, cmd *pb.Command, res statemachine.Result) {
	applied := nowNanos
	if c.cfg.MetricsClock != nil {
		applied = c.cfg.MetricsClock()
	}
	c.stats.CommitLatency.Observe(applied - cmd.GetNowNanos())
	if a, ok := cmd.Op.(*pb.Command_Acks); ok {
		c.stats.Acks += uint64(len(a.Acks.GetAcks()))
		for _, r := range a.Acks.GetRuns() {
			c.stats.Acks += uint64(len(r.GetSequences()))
		}
	}
	switch op := cmd.Op.(type) {
	case *pb.Command_Connect:
		req := op.Connect.GetRequest()
		if res.Err != "" {
			c.respond(cmd.ReplyTo, &pb.ConnectResponse{Error: res.Err})
			break
		}
		resp := &pb.ConnectResponse{PubPrefix: c.subj.PubPrefix, SubRequests: c.subj.Sub, UnsubRequests: c.subj.Unsub,
			SubCloseRequests: c.subj.SubClose, CloseRequests: c.subj.Close, Protocol: 1}
		if req.GetProtocol() >= 1 {
			resp.PingRequests = c.subj.Pings
			resp.PingInterval = req.GetPingInterval()
			resp.PingMaxOut = req.GetPingMaxOut()
		}
		c.hb[req.GetClientID()] = &hbState{nextNanos: nowNanos + c.cfg.HBIntervalNanos}
		c.rememberConn(req.GetConnID())
		c.log.Info("client connected", "client", req.GetClientID(), "replaced", op.Connect.GetReplace())
		c.respond(cmd.ReplyTo, resp)
	case *pb.Command_Close:
		if res.Err == "" {
			c.log.Info("client closed", "client", op.Close.GetClientID())
		}
		c.respond(cmd.ReplyTo, &pb.CloseResponse{Error: res.Err})
	case *pb.Command_Subscribe:
		c.respond(cmd.ReplyTo, &pb.SubscriptionResponse{AckInbox: res.AckInbox, Error: res.Err})
	case *pb.Command_Unsubscribe:
		c.respond(cmd.ReplyTo, &pb.SubscriptionResponse{Error: res.Err})
	case *pb.Command_Publish:
		subjects := op.Publish.GetAckSubjects()
		msgs := op.Publish.GetMsgs()
		if c.planted(statemachine.BugPubAckNeedsAllReplicas) && c.followerUnreachable() {
			subjects = nil
		}
		for i, a := range res.PubAcks {
			if a.Err == "" && i < len(msgs) {
				c.stats.InMsgs++
				c.stats.InBytes += uint64(len(msgs[i].GetData()))
			}
			if i < len(subjects) && subjects[i] != "" {
				c.ackBuf = appendPubAck(c.ackBuf[:0], a.Guid, a.Err)
				c.out(subjects[i], "", c.ackBuf)
			}
		}
	}
	for _, id := range res.Closed {
		delete(c.hb, id)
	}
	for _, d := range res.Deliveries {
		data := d.Wire()
		c.out(d.Inbox, "", data)
		c.stats.OutMsgs++
		if d.Redelivered {
			c.stats.Redelivered++
		}
		c.stats.OutBytes += uint64(len(data))
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

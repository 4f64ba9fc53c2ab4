package statemachine

import (
	"fmt"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// Config is what every replica must agree on besides the commands.
type Config struct {
	Limits Limits
	// Bugs plants deliberate bugs, for testing the simulator; only in
	// binaries built with the stanzabugs tag (see bugs.go).
	Bugs Bug
	// Log keeps the messages (see MessageLog). Nil: the state keeps them
	// in memory itself.
	Log MessageLog
}

// State is the whole replicated state of a stanza server. It is not safe for
// concurrent use; the node applies commands from one goroutine.
type State struct {
	cfg Config

	clients  map[string]*client // by client ID
	byConnID map[string]*client // by connection ID, for clients that sent one

	channels map[string]*channel // by name
	byLower  map[string]*channel // by lower-cased name: names are unique regardless of case

	subs       map[uint64]*sub // every subscription record, shadows and offline durables included
	byAckInbox map[string]*sub // online subscriptions only
	nextSubID  uint64
	nextLogID  uint64 // names the message log of the next channel

	msgs MessageLog
	own  *memLog // msgs when the Config named no log: trimmed as limits remove messages

	recBuf []byte // where append encodes each record before the log copies it
}

// New returns an empty state.
func New(cfg Config) *State {
	s := &State{
		cfg:        cfg,
		clients:    map[string]*client{},
		byConnID:   map[string]*client{},
		channels:   map[string]*channel{},
		byLower:    map[string]*channel{},
		subs:       map[uint64]*sub{},
		byAckInbox: map[string]*sub{},
		nextSubID:  1,
		nextLogID:  1,
		msgs:       cfg.Log,
	}
	if s.msgs == nil {
		s.own = newMemLog()
		s.msgs = s.own
	}
	return s
}

// Result is what applying one command decided. The leader carries it out;
// followers drop it (they computed the same).
type Result struct {
	// Err is the protocol rejection of a connect, close, subscribe or
	// unsubscribe request: an exact "stan: ..." string, empty on success.
	Err string
	// AckInbox is the ack inbox of a successful subscribe.
	AckInbox string
	// PubAcks has one entry per message of a Publish command, in order.
	PubAcks []PubAck
	// Deliveries are the messages to send, in order.
	Deliveries []Delivery
	// Closed lists the clients this command removed (closed, replaced,
	// expired), so the leader stops heartbeating them.
	Closed []string
}

// PubAck is the outcome of one published message.
type PubAck struct {
	Guid string
	Seq  uint64 // 0 when rejected
	Err  string
}

// Delivery is one message for one subscription's inbox.
type Delivery struct {
	SubID uint64
	Inbox string
	Seq   uint64 // of the message in its channel
	// Record is the stored message (an encoded MsgProto); Wire adds the
	// redelivery fields.
	Record          []byte
	Redelivered     bool
	RedeliveryCount uint32
}

// NewCommand wraps one operation (a *pb.Connect, *pb.Publish, ...) in a
// command stamped with nowNanos. It panics on a type that is not an
// operation: that is a programming error.
func NewCommand(nowNanos int64, op any) *pb.Command {
	cmd := &pb.Command{NowNanos: nowNanos}
	switch v := op.(type) {
	case *pb.Connect:
		cmd.Op = &pb.Command_Connect{Connect: v}
	case *pb.CloseClient:
		cmd.Op = &pb.Command_Close{Close: v}
	case *pb.Publish:
		cmd.Op = &pb.Command_Publish{Publish: v}
	case *pb.Subscribe:
		cmd.Op = &pb.Command_Subscribe{Subscribe: v}
	case *pb.Unsubscribe:
		cmd.Op = &pb.Command_Unsubscribe{Unsubscribe: v}
	case *pb.Acks:
		cmd.Op = &pb.Command_Acks{Acks: v}
	case *pb.Redeliver:
		cmd.Op = &pb.Command_Redeliver{Redeliver: v}
	case *pb.ExpireMsgs:
		cmd.Op = &pb.Command_Expire{Expire: v}
	case *pb.DeleteChannel:
		cmd.Op = &pb.Command_DeleteChannel{DeleteChannel: v}
	case *pb.ClientHealth:
		cmd.Op = &pb.Command_ClientHealth{ClientHealth: v}
	default:
		panic(fmt.Sprintf("statemachine: %T is not an operation", op))
	}
	return cmd
}

// EncodeCommand encodes a command for a raft entry.
func EncodeCommand(cmd *pb.Command) []byte {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		panic(fmt.Sprintf("statemachine: encode command: %v", err))
	}
	return data
}

// Apply applies one command. Every input is acceptable: a command that makes
// no sense (an unknown client, a stale redelivery) is rejected or ignored,
// deterministically, and changes nothing it should not.
func (s *State) Apply(cmd *pb.Command) Result { return s.apply(cmd, true) }

// ApplyQuiet is Apply for a replica that sends nothing of what it decides
// (a follower): the state changes exactly as with Apply, but deliveries
// carry no Record, so the message log is not read for them (a follower
// would otherwise read every message a subscriber replays).
func (s *State) ApplyQuiet(cmd *pb.Command) Result { return s.apply(cmd, false) }

func (s *State) apply(cmd *pb.Command, records bool) Result {
	a := &applier{s: s, now: cmd.GetNowNanos(), records: records}
	switch op := cmd.GetOp().(type) {
	case *pb.Command_Connect:
		a.connect(op.Connect)
	case *pb.Command_Close:
		a.closeRequest(op.Close.GetClientID(), op.Close.GetHbInbox())
	case *pb.Command_Publish:
		a.publish(op.Publish.GetMsgs())
	case *pb.Command_Subscribe:
		a.subscribe(op.Subscribe, cmd.GetReplaceDurable())
	case *pb.Command_Unsubscribe:
		a.unsubscribe(op.Unsubscribe.GetRequest(), op.Unsubscribe.GetCloseOnly())
	case *pb.Command_Acks:
		a.acks(op.Acks)
	case *pb.Command_Redeliver:
		a.redeliver(op.Redeliver.GetSubID())
	case *pb.Command_Expire:
		a.expire(op.Expire.GetChannel())
	case *pb.Command_DeleteChannel:
		a.deleteInactive(op.DeleteChannel.GetChannel())
	case *pb.Command_ClientHealth:
		a.clientHealth(op.ClientHealth.GetClientID(), op.ClientHealth.GetHbInbox(), op.ClientHealth.GetFailed())
	}
	return a.res
}

// applier carries the state of one Apply call.
type applier struct {
	s       *State
	now     int64
	res     Result
	records bool // deliveries carry their record
}

// Client is the public view of a registered client.
type Client struct {
	ID           string
	HbInbox      string
	ConnID       []byte
	Protocol     int32
	PingInterval int32
	PingMaxOut   int32
	FailedHB     bool
}

// Clients returns the registered clients sorted by ID.
func (s *State) Clients() []Client {
	out := make([]Client, 0, len(s.clients))
	for _, id := range sortedKeys(s.clients) {
		out = append(out, s.clients[id].view())
	}
	return out
}

// ClientByID returns the client with that ID.
func (s *State) ClientByID(id string) (Client, bool) {
	c, ok := s.clients[id]
	if !ok {
		return Client{}, false
	}
	return c.view(), true
}

// ClientByConnID returns the client with that connection ID, which is how a
// ping finds its client.
func (s *State) ClientByConnID(connID []byte) (Client, bool) {
	c, ok := s.byConnID[string(connID)]
	if !ok {
		return Client{}, false
	}
	return c.view(), true
}

// AckInboxKnown reports whether an online subscription has this ack inbox.
func (s *State) AckInboxKnown(ackInbox string) bool {
	_, ok := s.byAckInbox[ackInbox]
	return ok
}

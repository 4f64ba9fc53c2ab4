package sim

import (
	"math"

	"github.com/stanza-io/stanza/statemachine/pb"
)

// history records what clients saw: every publish with its outcome, and
// every delivery.
type history struct {
	now   func() int64
	pubs  []pubRecord
	dels  []delivery
	final *finalLog // set once the run converged and passed the final checks
}

type pubOutcome int

const (
	pubPending    pubOutcome = iota // no answer yet
	pubAcked                        // PubAck without error
	pubRejected                     // PubAck with an error: must have no effect
	pubIndefinite                   // timed out, or the client died: may or may not have happened
)

type pubRecord struct {
	client, channel, payload string
	call, ret                int64
	outcome                  pubOutcome
	err                      string
}

type delivery struct {
	client      string
	subInstance int
	identity    string
	kind        subKind
	channel     string
	seq         uint64
	payload     string
	redelivered bool
	at          int64
	from        endpoint // the node that sent it
}

func (h *history) publish(client, channel, payload string) int {
	h.pubs = append(h.pubs, pubRecord{client: client, channel: channel, payload: payload, call: h.now(), ret: math.MaxInt64})
	return len(h.pubs) - 1
}

func (h *history) acked(op int, err string) {
	p := &h.pubs[op]
	p.ret = h.now()
	if err == "" {
		p.outcome = pubAcked
	} else {
		p.outcome, p.err = pubRejected, err
	}
}

func (h *history) indefinite(op int) {
	p := &h.pubs[op]
	if p.outcome == pubPending {
		p.outcome = pubIndefinite
	}
}

func (h *history) delivery(client string, s *simSub, m *pb.MsgProto, from endpoint) {
	h.dels = append(h.dels, delivery{client: client, subInstance: s.id, identity: s.identity, kind: s.kind, channel: s.channel,
		seq: m.Sequence, payload: string(m.Data), redelivered: m.Redelivered, at: h.now(), from: from})
}

package sim

import (
	"bytes"
	"math/rand/v2"
	"sort"
	"strings"
)

// endpoint identifies a party on the simulated bus: nodes are 0..n-1,
// clients are clientBase+i.
type endpoint int

const clientBase endpoint = 1000

func (e endpoint) isNode() bool { return e < clientBase }

// packet is one message in flight.
type packet struct {
	deliverAt int64
	seq       uint64 // tie-break: send order
	from, to  endpoint
	subject   string
	reply     string
	data      []byte
}

// network is the simulated NATS: subject-based delivery to every
// subscriber, with the faults of the run. Like NATS over TCP, traffic
// between two parties stays in order unless the run reorders raft traffic
// (which raft must tolerate); NATS never reorders a connection's messages,
// so client traffic is never reordered.
type network struct {
	r       *rand.Rand
	faults  *Faults
	subs    map[endpoint][]string
	flight  []*packet
	seq     uint64
	lastAt  map[[2]endpoint]int64 // FIFO per pair: next delivery no earlier than the last one
	blocked map[[2]endpoint]bool  // partitions: from -> to cut
	down    map[endpoint]bool     // crashed or paused: packets to it wait (paused) or vanish (crashed)
	stats   struct{ sent, dropped, duplicated uint64 }
}

func newNetwork(r *rand.Rand, f *Faults) *network {
	return &network{r: r, faults: f, subs: map[endpoint][]string{}, lastAt: map[[2]endpoint]int64{}, blocked: map[[2]endpoint]bool{}, down: map[endpoint]bool{}}
}

func (n *network) setSubs(e endpoint, subjects []string) {
	n.subs[e] = append([]string(nil), subjects...)
}

// matches reports whether a NATS subject matches a subscription pattern.
func matches(pattern, subject string) bool {
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		s, srest, smore := strings.Cut(subject, ".")
		if p == ">" {
			return true
		}
		if p != "*" && p != s {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// publish sends a message to every endpoint subscribed to subject, in
// endpoint order.
func (n *network) publish(now int64, from endpoint, subject, reply string, data []byte) {
	data = bytes.Clone(data) // a node's buffer is its own again once this returns
	var targets []endpoint
	for e, pats := range n.subs {
		for _, p := range pats {
			if matches(p, subject) {
				targets = append(targets, e)
				break
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i] < targets[j] })
	raft := strings.HasPrefix(subject, "_STANZA.raft.")
	for _, to := range targets {
		n.stats.sent++
		if n.blocked[[2]endpoint{from, to}] || n.r.Float64() < n.faults.LossRate || raft && n.faults.RaftLoss > 0 && n.r.Float64() < n.faults.RaftLoss {
			n.stats.dropped++
			continue
		}
		copies := 1
		if raft && n.r.Float64() < n.faults.DupRate {
			copies = 2
			n.stats.duplicated++
		}
		for c := 0; c < copies; c++ {
			delay := n.faults.delay(n.r)
			at := now + delay
			key := [2]endpoint{from, to}
			if !raft || n.r.Float64() >= n.faults.ReorderRate {
				if last := n.lastAt[key]; at < last {
					at = last
				}
				n.lastAt[key] = at
			}
			n.seq++
			n.flight = append(n.flight, &packet{deliverAt: at, seq: n.seq, from: from, to: to, subject: subject, reply: reply, data: data})
		}
	}
}

// due removes and returns the packets to deliver at now, in (time, send)
// order. Packets for a paused endpoint stay queued; packets for a crashed
// one are lost.
func (n *network) due(now int64, paused func(endpoint) bool, crashed func(endpoint) bool) []*packet {
	sort.Slice(n.flight, func(i, j int) bool {
		a, b := n.flight[i], n.flight[j]
		if a.deliverAt != b.deliverAt {
			return a.deliverAt < b.deliverAt
		}
		return a.seq < b.seq
	})
	var out, keep []*packet
	for _, p := range n.flight {
		switch {
		case p.deliverAt > now || paused(p.to):
			keep = append(keep, p)
		case crashed(p.to):
			n.stats.dropped++
		default:
			out = append(out, p)
		}
	}
	n.flight = keep
	return out
}

// heal removes every partition.
func (n *network) heal() { clear(n.blocked) }

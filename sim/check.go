package sim

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/stanza-io/stanza/linearizability"
)

// History is a run's history in the checker's terms.
type History struct {
	Ops []Op
}

// Op is one operation of a history.
type Op = linearizability.Op

// Operation kinds.
const (
	Publish = linearizability.Publish
	Read    = linearizability.Read
)

// Linearizable checks the history with porcupine.
func (h History) Linearizable(timeout time.Duration) linearizability.Result {
	return linearizability.Check(h.Ops, timeout)
}

// finalLog is the leader's channel logs after convergence: seq -> payload
// and payload -> seq.
type finalLog struct {
	bySeq     map[chanSeq]string
	byPayload map[string]chanSeq
}

func (w *World) finalLog() *finalLog {
	fl := &finalLog{bySeq: map[chanSeq]string{}, byPayload: map[string]chanSeq{}}
	lead := w.leader()
	if lead == nil {
		return fl
	}
	err := eachMessage(lead.core.State(), func(key chanSeq, data string) {
		fl.bySeq[key] = data
		if prev, dup := fl.byPayload[data]; dup {
			w.fail(failSafety, "duplicate: payload %q stored at %s seq %d and seq %d", data, key.channel, prev.seq, key.seq)
		}
		fl.byPayload[data] = key
	})
	if err != nil {
		w.fail(failSafety, "leader %s cannot read its messages: %v", lead.name, err)
	}
	return fl
}

// finalChecks are the Jepsen-style checks over the whole history, once the
// cluster converged.
func (w *World) finalChecks() {
	fl := w.finalLog()
	for _, p := range w.hist.pubs {
		key, stored := fl.byPayload[p.payload]
		switch {
		case p.outcome == pubAcked && !stored:
			w.fail(failSafety, "lost: acknowledged publish %q on %s never stored", p.payload, p.channel)
		case p.outcome == pubRejected && stored:
			w.fail(failSafety, "unexpected: publish %q was rejected (%s) but stored at seq %d", p.payload, p.err, key.seq)
		case stored && key.channel != p.channel:
			w.fail(failSafety, "unexpected: publish %q to %s stored in %s", p.payload, p.channel, key.channel)
		}
	}
	type subSender struct {
		identity string
		from     endpoint
	}
	lastNew := map[subSender]uint64{}
	seenNew := map[string]map[uint64]bool{}
	for _, d := range w.hist.dels {
		if got, ok := fl.bySeq[chanSeq{d.channel, d.seq}]; !ok || got != d.payload {
			w.fail(failSafety, "unexpected: %s got %s seq %d %q, the log has %q", d.identity, d.channel, d.seq, d.payload, got)
			return
		}
		if d.redelivered {
			continue
		}
		// New deliveries of one subscription (a durable across resumes, a
		// queue group across members) are sent in sequence order, and
		// never twice.
		if seenNew[d.identity] == nil {
			seenNew[d.identity] = map[uint64]bool{}
		}
		if seenNew[d.identity][d.seq] {
			w.fail(failSafety, "duplicate: %s got %s seq %d as new twice", d.identity, d.channel, d.seq)
			return
		}
		seenNew[d.identity][d.seq] = true
		key := subSender{d.identity, d.from}
		if d.kind != queueSub && d.kind != durableQueueSub && d.seq <= lastNew[key] {
			w.fail(failSafety, "out of order: %s got new seq %d after new seq %d from node n%d", d.identity, d.seq, lastNew[key], d.from)
			return
		}
		lastNew[key] = max(lastNew[key], d.seq)
	}
	// Gaps: a subscription that got seq a and later seq b as new must have
	// received everything between, new or redelivered.
	all := map[string]map[uint64]bool{}
	lo, hi := map[string]uint64{}, map[string]uint64{}
	chOf := map[string]string{}
	for _, d := range w.hist.dels {
		if all[d.identity] == nil {
			all[d.identity] = map[uint64]bool{}
			lo[d.identity] = math.MaxUint64
		}
		all[d.identity][d.seq] = true
		chOf[d.identity] = d.channel
		if !d.redelivered {
			lo[d.identity] = min(lo[d.identity], d.seq)
			hi[d.identity] = max(hi[d.identity], d.seq)
		}
	}
	for _, id := range sortedKeys(all) {
		if w.durables[id] == nil {
			continue // a plain or queue subscription may end with messages in flight
		}
		for seq := lo[id]; seq <= hi[id] && hi[id] > 0; seq++ {
			if !all[id][seq] {
				w.fail(failSafety, "gap: %s never got %s seq %d (got %d..%d)", id, chOf[id], seq, lo[id], hi[id])
				return
			}
		}
	}
	if w.failure != nil {
		return
	}
	w.hist.final = fl
}

// exportHistory turns the run's history into linearizability operations:
// publishes with the sequence the final log gives them, deliveries as reads.
func (w *World) exportHistory() History {
	fl := w.hist.final
	if fl == nil {
		return History{}
	}
	clientIdx := map[string]int{}
	for i, c := range w.clients {
		clientIdx[c.id] = i
	}
	var h History
	for _, p := range w.hist.pubs {
		key, stored := fl.byPayload[p.payload]
		if !stored {
			continue // no effect (rejected, or an indefinite publish that did not happen)
		}
		ret := p.ret
		if p.outcome != pubAcked {
			ret = math.MaxInt64
		}
		h.Ops = append(h.Ops, linearizability.Op{Client: clientIdx[p.client], Kind: linearizability.Publish, Channel: p.channel,
			Seq: key.seq, Payload: p.payload, Call: p.call, Return: ret})
	}
	for _, d := range w.hist.dels {
		h.Ops = append(h.Ops, linearizability.Op{Client: clientIdx[d.client], Kind: linearizability.Read, Channel: d.channel,
			Seq: d.seq, Payload: d.payload, Call: d.at, Return: d.at})
	}
	return h
}

// WriteSummary prints a run's outcome.
func (r Result) WriteSummary(out io.Writer) {
	s := r.Stats
	fmt.Fprintf(out, "seed %d: nodes=%d clients=%d steps=%d published=%d acked=%d rejected=%d indefinite=%d deliveries=%d redeliveries=%d\n",
		r.Seed, r.Nodes, r.Clients, r.Steps, s.Published, s.Acked, s.Rejected, s.Indefinite, s.Deliveries, s.Redeliveries)
	fmt.Fprintf(out, "  crashes=%d restarts=%d partitions=%d leader_changes=%d packets=%d dropped=%d converged_at=%d",
		s.NodeCrashes, s.NodeRestarts, s.Partitions, s.LeaderChanges, s.PacketsSent, s.PacketsDropped, s.ConvergedAtStep)
	if s.DegradedMaxLag > 0 {
		fmt.Fprintf(out, " degraded_max_lag=%d degraded_max_answer=%d", s.DegradedMaxLag, s.DegradedMaxAnswer)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "  trace %s\n", r.TraceHash)
}

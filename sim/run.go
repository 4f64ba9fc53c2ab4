package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/stanza-io/stanza/node"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
	"go.etcd.io/raft/v3"
)

// Run runs the world to the end and returns its result. A panic anywhere in
// the code under test is reported as a crash failure with its message.
func (w *World) Run() (res Result) {
	defer w.recoverCrash(&res)
	w.Start()
	w.RunSteps(w.cfg.SafetySteps, nil)
	return w.Finish()
}

func (w *World) recoverCrash(res *Result) {
	if p := recover(); p != nil {
		w.failure = nil
		w.fail(failCrash, "panic: %v", p)
		*res = w.result()
	}
}

// Start prints the configuration and boots every node and client.
func (w *World) Start() {
	w.tracef("seed %d nodes %d clients %d channels %v safety_steps %d", w.cfg.Seed, w.cfg.Nodes, w.cfg.Clients, w.channels, w.cfg.SafetySteps)
	w.tracef("faults %s", w.faults)
	if w.degraded {
		w.tracef("a degraded phase comes before the full heal")
	}
	for _, n := range w.nodes {
		w.startNode(n)
	}
	for _, c := range w.clients {
		c.listen()
	}
	w.step = 1
}

// RunSteps runs up to n steps of the safety phase (faults on), stopping
// early when until (if set) holds or a checker fails. It reports whether
// until held.
func (w *World) RunSteps(n int, until func() bool) bool {
	for end := w.step + n; w.step < end && w.failure == nil; w.step++ {
		w.injectFaults()
		w.advance(false)
		w.checkStep()
		if until != nil && until() {
			w.step++
			return true
		}
	}
	return false
}

// Finish heals the cluster, requires convergence within the step budget,
// runs the final checks and returns the result.
func (w *World) Finish() (res Result) {
	defer w.recoverCrash(&res)
	if w.failure != nil {
		return w.result()
	}
	if w.degraded {
		w.degradedPhase()
		if w.failure != nil {
			return w.result()
		}
	}
	w.heal()
	healed := w.step
	// A durable with MaxInflight 1 drains one message per round trip (about
	// five steps): the budget grows with the longest channel.
	budget := w.step + w.cfg.LivenessSteps
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		sm := n.core.State()
		for _, ch := range sm.ChannelNames() {
			info, _ := sm.Channel(ch)
			budget = max(budget, w.step+w.cfg.LivenessSteps+6*int(info.Last))
		}
	}
	for ; w.step <= budget && w.failure == nil; w.step++ {
		w.advance(true)
		w.checkStep()
		if w.step%50 == 0 && w.converged() {
			w.stats.ConvergedAtStep = w.step
			w.tracef("converged")
			w.finalChecks()
			return w.result()
		}
	}
	if w.failure == nil {
		w.fail(failLiveness, "no convergence within %d steps after healing: %s", budget-healed, w.whyNotConverged())
	}
	return w.result()
}

func (w *World) result() Result {
	for _, p := range w.hist.pubs {
		w.stats.Published++
		switch p.outcome {
		case pubAcked:
			w.stats.Acked++
		case pubRejected:
			w.stats.Rejected++
		case pubIndefinite, pubPending:
			w.stats.Indefinite++
		}
	}
	for _, d := range w.hist.dels {
		w.stats.Deliveries++
		if d.redelivered {
			w.stats.Redeliveries++
		}
	}
	w.stats.PacketsSent, w.stats.PacketsDropped = w.net.stats.sent, w.net.stats.dropped
	return Result{Seed: w.cfg.Seed, Nodes: w.cfg.Nodes, Clients: w.cfg.Clients, Faults: w.faults.String(), Failure: w.failure,
		TraceHash: hex.EncodeToString(w.trace.Sum(nil)), Steps: w.step, Stats: w.stats, History: w.exportHistory()}
}

// advance moves time one step: deliver due packets, tick and process every
// running node, let every client act.
func (w *World) advance(liveness bool) {
	w.now += stepNanos
	for _, n := range w.nodes {
		if !n.up && !n.broken && !n.retired && n.crashedUntil <= w.now {
			w.stats.NodeRestarts++
			w.tracef("node %s restarts", n.name)
			w.startNode(n)
		}
	}
	paused := func(e endpoint) bool { return e.isNode() && w.nodes[e].pausedUntil > w.now }
	down := func(e endpoint) bool { return e.isNode() && !w.nodes[e].up }
	for _, p := range w.net.due(w.now, paused, down) {
		if p.to.isNode() {
			n := w.nodes[p.to]
			n.core.Receive(w.nodeNow(n), node.Msg{Subject: p.subject, Reply: p.reply, Data: p.data})
		} else {
			w.clients[p.to-clientBase].receive(p)
		}
		if w.failure != nil {
			return
		}
	}
	for _, n := range w.nodes {
		if !n.up || n.pausedUntil > w.now {
			continue
		}
		now := w.nodeNow(n)
		n.core.Tick(now)
		if err := n.core.Process(now); err != nil {
			w.crashNode(n, err.Error())
			continue
		}
		w.net.setSubs(n.ep, n.core.Listen())
	}
	for _, c := range w.clients {
		c.step(liveness)
	}
}

// injectFaults draws this step's faults.
func (w *World) injectFaults() {
	f, r := w.faults, w.r
	pick := func() *simNode { return w.nodes[r.IntN(len(w.nodes))] }
	if f.CrashRate > 0 && r.Float64() < f.CrashRate {
		if n := pick(); n.up {
			w.crashNode(n, "fault")
		}
	}
	if f.PauseRate > 0 && r.Float64() < f.PauseRate {
		if n := pick(); n.up && n.pausedUntil <= w.now {
			n.pausedUntil = w.now + int64(1+r.IntN(f.PauseSteps))*stepNanos
			w.tracef("node %s paused until step %d", n.name, w.step+int((n.pausedUntil-w.now)/stepNanos))
		}
	}
	if f.PartitionRate > 0 && r.Float64() < f.PartitionRate {
		w.partition()
	}
	if f.HealRate > 0 && r.Float64() < f.HealRate && len(w.net.blocked) > 0 {
		w.net.heal()
		w.tracef("network healed")
	}
	if f.DiskErrorRate > 0 && r.Float64() < f.DiskErrorRate {
		if n := pick(); n.up && n.diskFaults && !n.writeErrors {
			n.writeErrors = true
			n.fs.InjectFault(storage.OpWrite|storage.OpSync, "/data", errInjected)
			w.tracef("node %s disk write errors", n.name)
		}
	}
	if f.BitFlipRate > 0 && r.Float64() < f.BitFlipRate {
		if n := pick(); n.diskFaults {
			w.flipBit(n)
		}
	}
}

// partition cuts the network: isolate one node, split the nodes in two
// (symmetric), or cut one direction only (asymmetric). Clients go with a
// random side.
func (w *World) partition() {
	w.net.heal()
	w.stats.Partitions++
	r := w.r
	side := map[endpoint]int{}
	switch kind := r.IntN(3); kind {
	case 0:
		lone := endpoint(r.IntN(len(w.nodes)))
		for i := range w.nodes {
			if endpoint(i) == lone {
				side[endpoint(i)] = 1
			}
		}
		w.tracef("partition: isolate node n%d", lone)
	default:
		for i := range w.nodes {
			side[endpoint(i)] = r.IntN(2)
		}
		w.tracef("partition: split %v (asymmetric=%v)", side, kind == 2)
	}
	for i := range w.clients {
		side[clientBase+endpoint(i)] = r.IntN(2)
	}
	asym := r.IntN(3) == 2
	var all []endpoint
	for e := range side {
		all = append(all, e)
	}
	for i := range w.nodes {
		all = append(all, endpoint(i))
	}
	for _, a := range all {
		for _, b := range all {
			if side[a] != side[b] && (!asym || side[a] == 0) {
				w.net.blocked[[2]endpoint{a, b}] = true
			}
		}
	}
}

// flipBit flips one bit in a sealed (not the newest) log segment: damage
// that must be detected, never silently dropped.
func (w *World) flipBit(n *simNode) {
	names, err := n.fs.List("/data/wal")
	if err != nil || len(names) < 2 {
		return
	}
	sort.Strings(names)
	var segs []string
	for _, name := range names {
		if len(name) > 4 && name[len(name)-4:] == ".wal" {
			segs = append(segs, name)
		}
	}
	if len(segs) < 2 {
		return
	}
	name := "/data/wal/" + segs[w.r.IntN(len(segs)-1)]
	data, err := storage.ReadFile(n.fs, name)
	if err != nil || len(data) == 0 {
		return
	}
	off := w.r.Int64N(int64(len(data)))
	if err := n.fs.FlipBit(name, off, uint(w.r.IntN(8))); err == nil {
		w.tracef("node %s bit flip in %s at %d", n.name, name, off)
	}
}

// degradedPhase checks availability while a quorum is healthy, which the
// full heal cannot: with every node back, a stall that only the minority
// (or one more proposal) would end goes unseen. The faults stop and the
// network heals, except that raft packets are still lost (degradedLoss);
// a minority of the voters stays down (crashed now if it was up); the
// clients drain as in the liveness phase, and every degradedProbe steps one
// of them publishes, so that the cluster goes quiet after each proposal
// for longer than the bound; at every other probe, the leader's raft
// traffic to one running follower is cut for degradedCutSteps, which loses
// the append that carries it. For degradedSteps, every entry in the
// leader's log must be applied on every running node within degradedLag
// steps, a probe's publish must be answered within degradedAnswer steps
// unless the leader changed, and a leader must serve within degradedLag
// steps of losing the last one.
func (w *World) degradedPhase() {
	var voters []*simNode
	for _, n := range w.nodes {
		if !n.retired {
			voters = append(voters, n)
		}
	}
	k := (len(voters) - 1) / 2
	if k == 0 {
		return
	}
	// The minority: nodes whose disk already failed, then nodes that may
	// get disk faults, then any (they must leave a majority that can run).
	var down []*simNode
	isDown := map[*simNode]bool{}
	for _, pass := range []func(*simNode) bool{
		func(n *simNode) bool { return n.broken },
		func(n *simNode) bool { return n.diskFaults },
		func(*simNode) bool { return true },
	} {
		for _, i := range w.r.Perm(len(voters)) {
			if n := voters[i]; len(down) < k && !isDown[n] && pass(n) {
				down = append(down, n)
				isDown[n] = true
			}
		}
	}
	names := make([]string, len(down))
	for i, n := range down {
		names[i] = n.name
	}
	w.heal()
	w.faults.RaftLoss = degradedLoss
	w.tracef("degraded phase: %v stay down", names)
	for _, n := range down {
		if n.up {
			w.crashNode(n, "degraded phase")
		}
		n.crashedUntil = 1 << 62
	}
	var watch degradedWatch
	var cut [2]endpoint // a leader's raft traffic to one follower, cut until cutUntil
	cutUntil := 0
	start := w.step
	for end := w.step + degradedSteps; w.step < end && w.failure == nil; w.step++ {
		if cutUntil > 0 && w.step >= cutUntil {
			delete(w.net.blocked, cut)
			cutUntil = 0
		}
		if i := w.step - start; i%degradedProbe == degradedProbe/2 {
			w.probe(i/degradedProbe, &watch)
			// Every other probe, the append that carries it is lost on its
			// way to a follower: only the leader's next append after a
			// heartbeat answer tells raft, and the probe must still be
			// answered in time.
			if lead := w.leader(); lead != nil && (i/degradedProbe)%2 == 1 {
				for _, n := range w.nodes {
					if n != lead && n.up && !isDown[n] && !n.retired {
						cut, cutUntil = [2]endpoint{lead.ep, n.ep}, w.step+degradedCutSteps
						w.net.blocked[cut] = true
						w.tracef("degraded phase: %s's raft traffic to %s cut for %d steps", lead.name, n.name, degradedCutSteps)
						break
					}
				}
			}
		}
		w.advance(true)
		w.checkStep()
		if w.step%10 == 0 && w.failure == nil {
			if why := w.watchProgress(isDown, &watch); why != "" {
				w.fail(failLiveness, "with %v down: %s", names, why)
			}
		}
	}
	delete(w.net.blocked, cut)
	w.stats.DegradedMaxLag, w.stats.DegradedMaxAnswer = watch.maxLag, watch.maxAnswer
	w.tracef("degraded phase ends: entries applied everywhere within %d steps", watch.maxLag)
	w.faults.RaftLoss = 0 // the full heal that follows restarts the minority
}

// probe has the i-th connected client (round robin) with nothing in flight
// publish one message, and d watch for its answer when a leader serves.
func (w *World) probe(i int, d *degradedWatch) {
	for j := range w.clients {
		c := w.clients[(i+j)%len(w.clients)]
		if c.state == connected && len(c.pubs) == 0 && c.resp.PubPrefix != "" {
			w.tracef("client %s probes", c.id)
			c.publish()
			if lead := w.leader(); lead != nil {
				d.probes = append(d.probes, degradedProbeOp{op: len(w.hist.pubs) - 1, step: w.step, leader: lead.name,
					term: lead.core.Status().HardState.GetTerm()})
			}
			return
		}
	}
}

// degradedWatch follows the degraded phase: the leader's log as it grows
// (the step each index was first seen), and since when there is no leader.
type degradedWatch struct {
	leader   string
	term     uint64
	seen     []degradedSample // oldest first; dropped once applied everywhere
	noLeader int              // step since which none serves; 0 while one does
	maxLag   int
	probes   []degradedProbeOp // publishes not yet answered, oldest first
	// maxAnswer: the longest a probe waited for its answer from the
	// leader it was sent to.
	maxAnswer int
}

// degradedProbeOp is a probe's publish and the leader that served when it
// was sent.
type degradedProbeOp struct {
	op     int // in w.hist.pubs
	step   int
	leader string
	term   uint64
}

type degradedSample struct {
	step  int
	index uint64
}

// watchProgress takes a sample and says what is late, "" if nothing is.
// A new leader starts the watch over: it may discard what the old one had
// not committed, and its election was bounded on its own.
func (w *World) watchProgress(down map[*simNode]bool, d *degradedWatch) string {
	lead := w.leader()
	if lead == nil {
		if d.noLeader == 0 {
			d.noLeader = w.step
		}
		if w.step-d.noLeader > degradedLag {
			return fmt.Sprintf("no leader served for %d steps", w.step-d.noLeader)
		}
		return ""
	}
	d.noLeader = 0
	st := lead.core.Status()
	if d.leader != lead.name || d.term != st.HardState.GetTerm() {
		d.leader, d.term, d.seen = lead.name, st.HardState.GetTerm(), d.seen[:0]
	}
	if last := st.Progress[st.ID].Match; len(d.seen) == 0 || d.seen[len(d.seen)-1].index < last {
		d.seen = append(d.seen, degradedSample{w.step, last})
	}
	applied, slowest := uint64(1<<63), ""
	for _, n := range w.nodes {
		if down[n] || n.retired || n.broken || !n.up {
			continue // no crashes in this phase: only the minority is down
		}
		if a := n.core.Applied(); a < applied {
			applied, slowest = a, n.name
		}
	}
	for len(d.seen) > 0 && d.seen[0].index <= applied {
		d.maxLag = max(d.maxLag, w.step-d.seen[0].step)
		d.seen = d.seen[1:]
	}
	// A publish sent while a leader served is answered within the bound if
	// that leader still leads (in the same term): only a change of leader
	// may leave it to the client's timeout.
	kept := d.probes[:0]
	for _, p := range d.probes {
		sameLeader := p.leader == lead.name && p.term == st.HardState.GetTerm()
		switch {
		case w.hist.pubs[p.op].outcome != pubPending:
			if sameLeader {
				d.maxAnswer = max(d.maxAnswer, w.step-p.step)
			}
		case w.step-p.step <= degradedAnswer:
			kept = append(kept, p)
		case sameLeader:
			return fmt.Sprintf("publish %q, sent at step %d, has no answer after %d steps, leader %s serving throughout",
				w.hist.pubs[p.op].payload, p.step, w.step-p.step, lead.name)
		}
	}
	d.probes = kept
	if len(d.seen) > 0 && w.step-d.seen[0].step > degradedLag {
		return fmt.Sprintf("index %d, in leader %s's log since step %d, is not applied on %s after %d steps (applied %d, leader committed %d)",
			d.seen[0].index, lead.name, d.seen[0].step, slowest, w.step-d.seen[0].step, applied, st.HardState.GetCommit())
	}
	return ""
}

// heal ends the safety phase: no more faults, the network heals, paused
// nodes resume, crashed nodes restart now.
func (w *World) heal() {
	w.tracef("heal: liveness phase")
	w.net.heal()
	w.faults.LossRate, w.faults.DupRate, w.faults.ReorderRate, w.faults.DelaySpike = 0, 0, 0, 0
	w.faults.DelayMin, w.faults.DelayMax = 1, 1
	for _, n := range w.nodes {
		n.pausedUntil = 0
		n.crashedUntil = 0
		if n.writeErrors {
			n.fs.ClearFaults()
			n.writeErrors = false
		}
	}
}

// checkStep runs the checkers that hold at every step.
func (w *World) checkStep() {
	if w.failure != nil {
		return
	}
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		st := n.core.Status()
		if st.RaftState == raft.StateLeader {
			term := st.HardState.GetTerm()
			if prev, ok := w.leaders[term]; ok && prev != n.name {
				w.fail(failSafety, "two leaders in term %d: %s and %s", term, prev, n.name)
				return
			}
			w.leaders[term] = n.name
			if w.lastLead != n.name {
				w.lastLead = n.name
				w.stats.LeaderChanges++
				w.tracef("leader %s term %d", n.name, term)
			}
		}
	}
	if w.step%50 == 0 {
		for _, n := range w.nodes {
			if !n.up {
				continue
			}
			sum := sha256.Sum256(n.core.State().Snapshot())
			idx := n.core.Applied()
			if prev, ok := w.stateAt[idx]; ok && prev != sum {
				w.fail(failSafety, "node %s has a different state at applied index %d than another replica", n.name, idx)
				return
			}
			w.stateAt[idx] = sum
		}
	}
	if w.step%50 == 0 {
		for _, n := range w.nodes {
			if !n.up {
				continue
			}
			_ = eachMessage(n.core.State(), func(key chanSeq, data string) { // a failed disk stops the node soon
				if prev, ok := w.contents[key]; ok && prev != data {
					w.fail(failSafety, "node %s: %s seq %d is %q, was %q", n.name, key.channel, key.seq, data, prev)
				}
				w.contents[key] = data
			})
		}
	}
}

func (w *World) leader() *simNode {
	for _, n := range w.nodes {
		if n.up && n.core.Serving() {
			return n
		}
	}
	return nil
}

// converged: a leader serves, every client is connected with nothing
// outstanding, every healthy node has every acknowledged message, and every
// durable has received everything in its channel.
func (w *World) converged() bool { return w.whyNotConverged() == "" }

func (w *World) whyNotConverged() string {
	lead := w.leader()
	if lead == nil {
		return "no leader serves clients"
	}
	for _, c := range w.clients {
		if c.state != connected || len(c.pubs) > 0 || len(c.requests) > 0 {
			return fmt.Sprintf("client %s not settled (state %d, %d publishes, %d requests outstanding)", c.id, c.state, len(c.pubs), len(c.requests))
		}
	}
	sm := lead.core.State()
	for _, n := range w.nodes {
		if n.broken || n.retired {
			continue
		}
		if !n.up {
			return fmt.Sprintf("node %s is down", n.name)
		}
		// Every acknowledged publish is readable on every healthy node.
		have := map[string]bool{}
		if err := eachMessage(n.core.State(), func(_ chanSeq, data string) { have[data] = true }); err != nil {
			return fmt.Sprintf("node %s cannot read its messages: %v", n.name, err)
		}
		for _, p := range w.hist.pubs {
			if p.outcome == pubAcked && !have[p.payload] {
				return fmt.Sprintf("node %s lacks acknowledged publish %q", n.name, p.payload)
			}
		}
	}
	for _, id := range sortedKeys(w.durables) {
		d := w.durables[id]
		info, ok := sm.Channel(d.channel)
		if !ok {
			return fmt.Sprintf("durable %s: channel %s missing", id, d.channel)
		}
		got := map[uint64]bool{}
		for _, del := range w.hist.dels {
			if del.identity == id {
				got[del.seq] = true
			}
		}
		for seq := info.First; seq <= info.Last; seq++ {
			if !got[seq] {
				return fmt.Sprintf("durable %s has not received %s seq %d (last %d)", id, d.channel, seq, info.Last)
			}
		}
	}
	return ""
}

// eachMessage calls f for every message a replica holds, in channel and
// sequence order. It stops at the first message the replica cannot read
// (its disk failed: the replica stops at its next write) and returns why.
func eachMessage(sm *statemachine.State, f func(key chanSeq, data string)) error {
	for _, ch := range sm.ChannelNames() {
		info, _ := sm.Channel(ch)
		for seq := info.First; seq <= info.Last; seq++ {
			m, err := sm.Message(ch, seq)
			if err != nil {
				return err
			}
			f(chanSeq{ch, seq}, string(m.Data))
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

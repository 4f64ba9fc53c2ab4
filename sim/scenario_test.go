package sim

import (
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

// Scripted fault scenarios on the same world as the seeded runs: no random
// faults, a fixed workload, and one fault placed on purpose. Each ends with
// the liveness phase and every final check.

func scenario(t *testing.T, seed uint64) *World {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	w := New(Config{Seed: seed, Nodes: 3, Clients: 3, Faults: &Faults{DelayMin: 1, DelayMax: 2}})
	w.Start()
	if !w.RunSteps(2000, func() bool { return w.leader() != nil && w.hist.countAcked() >= 20 }) {
		t.Fatalf("no leader and 20 acknowledged publishes within 2000 steps: %v", w.failure)
	}
	return w
}

func (h *history) countAcked() int {
	n := 0
	for _, p := range h.pubs {
		if p.outcome == pubAcked {
			n++
		}
	}
	return n
}

func finish(t *testing.T, w *World) Result {
	t.Helper()
	res := w.Finish()
	if res.Failure != nil {
		t.Fatalf("%v\nreplay the seed's trace with the scenario's steps to investigate", res.Failure)
	}
	if lin := res.History.Linearizable(time.Minute); !lin.Ok() {
		t.Fatal("history not linearizable")
	}
	return res
}

func (w *World) followers() []*simNode {
	var out []*simNode
	for _, n := range w.nodes {
		if n.up && !n.core.Serving() {
			out = append(out, n)
		}
	}
	return out
}

func TestScenarioLeaderCrashAfterAckBeforeFollowerApply(t *testing.T) {
	w := scenario(t, 11)
	// Wait for a step where the leader has applied (and so acknowledged) an
	// entry no follower has applied yet, then crash it right there.
	var lead *simNode
	ok := w.RunSteps(2000, func() bool {
		lead = w.leader()
		if lead == nil {
			return false
		}
		for _, f := range w.followers() {
			if f.core.Applied() >= lead.core.Applied() {
				return false
			}
		}
		return len(w.followers()) > 0
	})
	if !ok {
		t.Fatal("the leader never got ahead of its followers")
	}
	applied := lead.core.Applied()
	w.crashNode(lead, "scripted: leader crash after ack, before follower apply")
	w.RunSteps(500, nil)
	res := finish(t, w)
	t.Logf("leader %s crashed at applied index %d; %d acknowledged publishes all survived", lead.name, applied, res.Stats.Acked)
}

func TestScenarioAsymmetricPartition(t *testing.T) {
	w := scenario(t, 12)
	lead := w.leader()
	// The leader still hears everyone, but nobody hears it.
	for _, n := range w.nodes {
		if n != lead {
			w.net.blocked[[2]endpoint{lead.ep, n.ep}] = true
		}
	}
	for _, c := range w.clients {
		w.net.blocked[[2]endpoint{lead.ep, c.ep}] = true
	}
	w.RunSteps(800, nil)
	if nl := w.leader(); nl == nil || nl == lead {
		t.Fatalf("no new leader while the old one cannot be heard (leader now %v)", nl)
	}
	w.net.heal()
	w.RunSteps(300, nil)
	finish(t, w)
}

func TestScenarioEveryNodeLosesUnsyncedWrites(t *testing.T) {
	w := scenario(t, 13)
	// A power loss: every node crashes at once, each losing (and tearing)
	// whatever it had not fsynced. Acknowledged data was fsynced on a quorum
	// and must survive.
	for _, n := range w.nodes {
		w.crashNode(n, "scripted: power loss")
		n.crashedUntil = w.now + 50*stepNanos
	}
	w.RunSteps(1000, nil)
	finish(t, w)
}

func TestScenarioMinorityDiskCorruption(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 14)
	w := New(Config{Seed: 14, Nodes: 3, Clients: 3, Faults: &Faults{DelayMin: 1, DelayMax: 2}})
	w.nodes[0].diskFaults = true
	w.Start()
	// Enough traffic for a sealed log segment on n0 that a snapshot has
	// not made obsolete yet.
	if !w.RunSteps(6000, func() bool {
		names, _ := w.nodes[0].fs.List("/data/wal")
		segs := 0
		for _, name := range names {
			if strings.HasSuffix(name, ".wal") {
				segs++
			}
		}
		return segs >= 2
	}) {
		t.Fatal("n0 never sealed a log segment")
	}
	victim := w.nodes[0]
	w.flipBit(victim)
	w.crashNode(victim, "scripted: restart on a corrupted log")
	victim.crashedUntil = w.now + stepNanos
	w.RunSteps(300, nil)
	if !victim.broken {
		t.Fatal("a node restarted on a log with a flipped bit in a sealed segment: corruption must be detected")
	}
	finish(t, w)
}

func TestScenarioLaggingFollowerCatchesUpFromSnapshot(t *testing.T) {
	w := scenario(t, 15)
	f := w.followers()[0]
	w.crashNode(f, "scripted: a follower down while the log is compacted")
	f.crashedUntil = w.now + 1_000_000*stepNanos
	// SnapshotEntries is 200 and TrailingEntries 50: 600 entries later the
	// follower's position is gone from the leader's log.
	lead := w.leader()
	start := lead.core.Applied()
	if !w.RunSteps(20000, func() bool { l := w.leader(); return l != nil && l.core.Applied() > start+600 }) {
		t.Fatal("the cluster did not apply 600 entries")
	}
	first, _ := w.leader().st.FirstIndex()
	if first <= f.applied {
		t.Fatalf("the leader's log still starts at %d, the follower needs %d: no snapshot needed", first, f.applied+1)
	}
	f.crashedUntil = w.now
	w.RunSteps(500, nil)
	finish(t, w)
	if f.core.Applied() < first {
		t.Fatalf("follower applied %d, below the leader's log start %d", f.core.Applied(), first)
	}
}

func TestScenarioSnapshotInstalledDuringMembershipChange(t *testing.T) {
	w := scenario(t, 16)
	// Let the log be compacted, so a new member can only start from a
	// snapshot.
	if !w.RunSteps(20000, func() bool {
		l := w.leader()
		if l == nil {
			return false
		}
		first, _ := l.st.FirstIndex()
		return first > 100
	}) {
		t.Fatal("the leader's log was never compacted")
	}
	joiner := w.addNode()
	if err := w.leader().core.ChangeMembership(true, joiner.name, ""); err != nil {
		t.Fatal(err)
	}
	// Traffic goes on while the change commits and the snapshot travels.
	voters := func() int {
		if l := w.leader(); l != nil {
			return len(l.core.Status().Config.Voters[0])
		}
		return 0
	}
	if !w.RunSteps(3000, func() bool { return voters() == 4 && joiner.core.Applied() > 0 }) {
		t.Fatalf("the new member never joined (voters %d, its applied %d)", voters(), joiner.core.Applied())
	}
	// Then a member leaves: a follower other than the new one.
	var leaving *simNode
	for _, f := range w.followers() {
		if f != joiner {
			leaving = f
			break
		}
	}
	if err := w.leader().core.ChangeMembership(false, leaving.name, ""); err != nil {
		t.Fatal(err)
	}
	if !w.RunSteps(3000, func() bool { return voters() == 3 }) {
		t.Fatalf("%s was never removed (voters %d)", leaving.name, voters())
	}
	w.retire(leaving)
	w.RunSteps(300, nil)
	res := finish(t, w)
	if joiner.core.Applied() == 0 {
		t.Fatal("the new member applied nothing")
	}
	if snap, err := joiner.st.Snapshot(); err != nil || snap.GetMetadata().GetIndex() == 0 {
		t.Fatalf("the new member did not start from a snapshot: %v %v", snap.GetMetadata(), err)
	}
	t.Logf("n3 joined from a snapshot and %s left; %d acknowledged publishes checked on the new member", leaving.name, res.Stats.Acked)
}

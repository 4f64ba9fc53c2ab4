package sim

import (
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

func runSeed(t *testing.T, seed uint64) Result {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	return New(Config{Seed: seed}).Run()
}

// TestSeeds runs a few seeds end to end with every checker, porcupine
// included. `make sim` sweeps many more.
func TestSeeds(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 8, 125} {
		t.Run("", func(t *testing.T) {
			res := runSeed(t, seed)
			var b strings.Builder
			res.WriteSummary(&b)
			t.Log(b.String())
			if res.Failure != nil {
				t.Fatalf("seed %d: %v\nfaults: %s\nreplay: go run ./cmd/stanza-sim -seed %d -trace t.log", seed, res.Failure, res.Faults, seed)
			}
			if res.Stats.Acked == 0 || res.Stats.Deliveries == 0 || res.Stats.ConvergedAtStep == 0 {
				t.Fatalf("seed %d did nothing worth checking: %+v", seed, res.Stats)
			}
			lin := res.History.Linearizable(time.Minute)
			if !lin.Ok() || lin.Ops() == 0 {
				t.Fatalf("seed %d: porcupine says %v over %d operations", seed, lin.Verdict, lin.Ops())
			}
		})
	}
}

// TestSameSeedSameTrace proves the run is a function of the seed: raft's
// election timeouts (crypto/rand) included.
func TestSameSeedSameTrace(t *testing.T) {
	hash := func(seed uint64) (h string) {
		t.Run("", func(t *testing.T) { h = runSeed(t, seed).TraceHash })
		return h
	}
	a, b, c := hash(7), hash(7), hash(9)
	if a != b {
		t.Fatalf("seed 7 gave trace %s, then %s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 7 and 9 gave the same trace %s", a)
	}
}

// A broken server must be caught: a checker that cannot fail proves
// nothing. This world loses every acknowledged message it can.
func TestCheckersCatchLoss(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 3)
	w := New(Config{Seed: 3})
	res := w.Run()
	if res.Failure != nil {
		t.Fatalf("seed 3 must pass before we break it: %v", res.Failure)
	}
	// Pretend a publish the server never stored was acknowledged.
	w.failure = nil
	w.hist.pubs = append(w.hist.pubs, pubRecord{client: "c0", channel: w.channels[0], payload: "never-stored", outcome: pubAcked})
	w.finalChecks()
	if w.failure == nil || !strings.Contains(w.failure.Message, "lost") {
		t.Fatalf("an acknowledged, never stored publish was not reported lost: %v", w.failure)
	}
	// A delivery of a sequence before its publish was even called.
	ops := res.History.Ops
	if len(ops) == 0 {
		t.Fatal("no history")
	}
	bad := append([]Op(nil), ops...)
	for i := range bad {
		if bad[i].Kind == Read {
			bad[i].Call, bad[i].Return = -1, -1
			break
		}
	}
	if lin := (History{Ops: bad}).Linearizable(time.Minute); lin.Ok() {
		t.Fatal("porcupine accepted a delivery that precedes every publish")
	}
}

// TestDegradedPhase runs a seed that has the degraded phase (five nodes,
// two of them down for it): it must pass, and have measured the lag of
// entries it watched. That it can fail is TestPlantedBugsAreCaught's job.
func TestDegradedPhase(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2)
	w := New(Config{Seed: 2})
	if !w.degraded || w.cfg.Nodes != 5 {
		t.Fatalf("seed 2 no longer draws a degraded phase on five nodes (degraded %v, %d nodes): pick another", w.degraded, w.cfg.Nodes)
	}
	var trace strings.Builder
	w.traceOut = &trace
	res := w.Run()
	if res.Failure != nil {
		t.Fatalf("seed 2: %v", res.Failure)
	}
	if lag := res.Stats.DegradedMaxLag; lag <= 0 || lag > degradedLag {
		t.Fatalf("degraded phase lag %d steps, want 1..%d", lag, degradedLag)
	}
	for _, want := range []string{"degraded phase: [", "probes", "degraded phase ends"} {
		if !strings.Contains(trace.String(), want) {
			t.Fatalf("trace has no %q", want)
		}
	}
	// The minority stays down for the whole phase.
	_, phase, _ := strings.Cut(trace.String(), "degraded phase: [")
	phase, _, _ = strings.Cut(phase, "degraded phase ends")
	names, _, _ := strings.Cut(phase, "]")
	for _, n := range strings.Fields(names) {
		if strings.Contains(phase, "node "+n+" restarts") {
			t.Fatalf("%s restarted during the degraded phase", n)
		}
	}
}

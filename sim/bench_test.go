package sim

import "testing"

// BenchmarkSeed runs whole seeds (3 nodes, the default workload) and reports
// simulated seconds per wall second and seeds per minute. Raft's election
// randomness is not seeded here (cryptotest needs a *testing.T): the speed
// does not depend on it.
func BenchmarkSeed(b *testing.B) {
	var simNanos int64
	for i := 0; i < b.N; i++ {
		seed := uint64(1000 + i)
		w := New(Config{Seed: seed, Nodes: 3})
		res := w.Run()
		if res.Failure != nil {
			b.Fatalf("seed %d: %v", seed, res.Failure)
		}
		simNanos += int64(res.Steps) * stepNanos
	}
	wall := b.Elapsed().Seconds()
	b.ReportMetric(float64(simNanos)/1e9/wall, "sim-s/wall-s")
	b.ReportMetric(float64(b.N)/wall*60, "seeds/min")
}

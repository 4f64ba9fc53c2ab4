package sim

import (
	"testing"
	"testing/cryptotest"
	"time"
)

func runSeed(t *testing.T, seed uint64) Result {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	return New(Config{Seed: seed}).Run()
}

func TestSeedsPass(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		start := time.Now()
		res := runSeed(t, seed)
		var b testWriter
		res.WriteSummary(&b)
		t.Logf("%s(%v)", b, time.Since(start))
		if res.Failure != nil {
			t.Fatalf("seed %d: %v\nfaults: %s", seed, res.Failure, res.Faults)
		}
		if lin := res.History.Linearizable(30 * time.Second); !lin.Ok() {
			t.Fatalf("seed %d: history not linearizable", seed)
		}
	}
}

type testWriter struct{ s string }

func (w *testWriter) Write(p []byte) (int, error) { w.s += string(p); return len(p), nil }
func (w testWriter) String() string               { return w.s }

package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 511, 512, 1 << 20, 1<<40 + 12345, 1<<63 - 1, 1<<64 - 1} {
		i := bucket(v)
		if i < prev || i >= len(Histogram{}.counts) {
			t.Fatalf("bucket(%d) = %d after %d", v, i, prev)
		}
		if hi := bucketHigh(i); hi < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Fatalf("value %d in bucket %d whose range ends at %d", v, i, hi)
		}
		prev = i
	}
}

func TestQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var vals []time.Duration
	for range 100000 {
		// Log-uniform from 1µs to 1s.
		d := time.Duration(1e3 * math.Pow(2, rng.Float64()*20))
		vals = append(vals, d)
		h.Record(d)
	}
	slices.Sort(vals)
	for _, p := range Percentiles {
		want := vals[len(vals)-1]
		if p.Q < 1 {
			want = vals[int(p.Q*float64(len(vals)))-1]
		}
		got := h.Quantile(p.Q)
		if got < want || float64(got-want) > float64(want)/128+1 {
			t.Errorf("%s = %v, exact %v", p.Name, got, want)
		}
	}
	var m Histogram
	m.Merge(&h)
	if m.Count() != h.Count() || m.Quantile(0.99) != h.Quantile(0.99) || m.Quantile(1) != h.Quantile(1) {
		t.Error("merge changed the distribution")
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

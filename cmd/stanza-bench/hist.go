package main

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram records durations in log-linear buckets, HdrHistogram-style:
// values below 2^subBits ns are exact, and every larger power-of-two range is
// split into 2^subBits equal buckets, so a reported value is within 1/128
// (0.8%) of the recorded one whatever its magnitude. It needs a fixed 58 KiB
// and no allocation per value. It is safe for concurrent use.
type Histogram struct {
	mu     sync.Mutex
	counts [(64 - subBits + 1) * subCount]uint64
	total  uint64
	min    int64
	max    int64
}

const (
	subBits  = 7
	subCount = 1 << subBits
)

// bucket returns the index of the bucket holding v.
func bucket(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subCount, 2*subCount)
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketHigh returns the highest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	sub := uint64(i%subCount + subCount)
	return (sub+1)<<shift - 1
}

// Record adds one duration; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.mu.Lock()
	h.counts[bucket(uint64(v))]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.mu.Unlock()
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.total == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Quantile returns the value at quantile q in [0, 1]: the highest value of
// the bucket that holds the ceil(q*count)-th smallest value, capped by the
// exact maximum. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := int64(bucketHigh(i))
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Percentiles are the ones every report prints.
var Percentiles = []struct {
	Name string
	Q    float64
}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"max", 1}}

// Summary is a histogram's percentiles in microseconds, for JSON output.
type Summary struct {
	Count uint64             `json:"count"`
	Micro map[string]float64 `json:"us"`
}

// Summary returns the standard percentiles.
func (h *Histogram) Summary() Summary {
	s := Summary{Count: h.Count(), Micro: map[string]float64{}}
	for _, p := range Percentiles {
		s.Micro[p.Name] = float64(h.Quantile(p.Q)) / 1e3
	}
	return s
}

// String formats the standard percentiles on one line.
func (h *Histogram) String() string {
	s := fmt.Sprintf("%d samples:", h.Count())
	for i, p := range Percentiles {
		if i > 0 {
			s += " |"
		}
		s += fmt.Sprintf(" %s %v", p.Name, roundDuration(h.Quantile(p.Q)))
	}
	return s
}

// roundDuration keeps three significant digits.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	default:
		return d.Round(100 * time.Nanosecond)
	}
}

package node

import (
	"fmt"
	"io"
	"strconv"
)

// latencyBoundsNanos are the upper bounds of the latency histograms'
// buckets, from 100 µs to 5 s.
var latencyBoundsNanos = [...]int64{100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1e9, 5e9}

// Histogram counts latencies in fixed buckets, as Prometheus histograms do.
// Not safe for concurrent use: each one is owned by the core's goroutine.
type Histogram struct {
	counts   [len(latencyBoundsNanos) + 1]uint64 // the last bucket is +Inf
	sumNanos int64
	n        uint64
}

// Observe records one latency.
func (h *Histogram) Observe(nanos int64) {
	if nanos < 0 {
		nanos = 0
	}
	i := 0
	for i < len(latencyBoundsNanos) && nanos > latencyBoundsNanos[i] {
		i++
	}
	h.counts[i]++
	h.sumNanos += nanos
	h.n++
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// writeProm writes the histogram in the Prometheus text format, in seconds.
func (h *Histogram) writeProm(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range latencyBoundsNanos {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(float64(b)/1e9, 'g', -1, 64), cum)
	}
	cum += h.counts[len(latencyBoundsNanos)]
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, cum, name, strconv.FormatFloat(float64(h.sumNanos)/1e9, 'g', -1, 64), name, h.n)
}

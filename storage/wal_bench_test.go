package storage

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkWALAppend measures Save with one fsync per batch on the OS file
// system.
func BenchmarkWALAppend(b *testing.B) {
	for _, entryBytes := range []int{128, 1024} {
		for _, batch := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("entry=%dB/batch=%d", entryBytes, batch), func(b *testing.B) {
				w, err := OpenWAL(OSFS{}, b.TempDir(), WALOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				data := make([]byte, entryBytes)
				es := make([]*raftpb.Entry, batch)
				b.SetBytes(int64(entryBytes * batch))
				index, compacted := uint64(1), uint64(0)
				for b.Loop() {
					for i := range es {
						es[i] = &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Data: data}
						index++
					}
					if err := w.Save(hardState(1, 1, index-1), es, true); err != nil {
						b.Fatal(err)
					}
					// Keep memory flat over long runs, like an application
					// compacting what it applied.
					if index-compacted > 100_000 {
						compacted = index - 1
						if err := w.Compact(compacted); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkWALOpen measures replay at open: a log of WAL_OPEN_MB megabytes
// (default 1024) of 1 KiB entries in batches of 128, written once, then
// opened b.N times. It reports MB/s and entries/s of replay.
func BenchmarkWALOpen(b *testing.B) {
	totalMB := 1024
	if v, err := strconv.Atoi(os.Getenv("WAL_OPEN_MB")); err == nil && v > 0 {
		totalMB = v
	}
	dir := b.TempDir()
	w, err := OpenWAL(OSFS{}, dir, WALOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1024)
	es := make([]*raftpb.Entry, 128)
	index := uint64(1)
	for written := 0; written < totalMB<<20; written += len(data) * len(es) {
		for i := range es {
			es[i] = &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Data: data}
			index++
		}
		if err := w.Save(hardState(1, 1, index-1), es, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	entries := index - 1
	b.SetBytes(int64(totalMB) << 20)
	b.ResetTimer()
	for b.Loop() {
		w, err := OpenWAL(OSFS{}, dir, WALOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if last, _ := w.LastIndex(); last != entries {
			b.Fatalf("reopened log ends at %d, want %d", last, entries)
		}
		w.Close()
	}
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

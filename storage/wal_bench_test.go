package storage

import (
	"fmt"
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

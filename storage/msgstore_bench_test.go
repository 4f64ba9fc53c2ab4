package storage

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkMsgStorePut measures Put on the OS file system with one Sync
// every 128 puts.
func BenchmarkMsgStorePut(b *testing.B) {
	for _, msgBytes := range []int{128, 1024} {
		b.Run(fmt.Sprintf("msg=%dB/sync=128", msgBytes), func(b *testing.B) {
			s, err := OpenFileMsgStore(OSFS{}, b.TempDir(), FileMsgStoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, msgBytes)
			b.SetBytes(int64(msgBytes))
			seq := uint64(0)
			for b.Loop() {
				seq++
				if err := s.Put("bench", seq, int64(seq), data); err != nil {
					b.Fatal(err)
				}
				if seq%128 == 0 {
					if err := s.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// replayMsgs is the size of the channel the replay and open benchmarks
// build: 1M messages of 128 bytes, 160 MB on disk with the framing.
const (
	replayMsgs     = 1 << 20
	replayMsgBytes = 128
)

// buildReplayStore writes replayMsgs messages to one channel of a new store
// in dir, syncs and closes it.
func buildReplayStore(b *testing.B, dir string) {
	b.Helper()
	s, err := OpenFileMsgStore(OSFS{}, dir, FileMsgStoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, replayMsgBytes)
	for seq := uint64(1); seq <= replayMsgs; seq++ {
		data[0], data[1] = byte(seq), byte(seq>>8)
		if err := s.Put("bench", seq, int64(seq), data); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// heapInUseMB returns the heap in use after a collection, in MB.
func heapInUseMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / 1e6
}

// BenchmarkMsgStoreReplay measures a sequential Get of every message of a
// channel of 1M messages of 128 bytes, one Get per op, on a freshly opened
// store (the page cache is warm from writing it). heap-MB is the heap in
// use after the replay, with the store open: it stays far below the 160 MB
// of the channel, which is never loaded into memory.
func BenchmarkMsgStoreReplay(b *testing.B) {
	dir := b.TempDir()
	buildReplayStore(b, dir)
	s, err := OpenFileMsgStore(OSFS{}, dir, FileMsgStoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	before := heapInUseMB()
	b.SetBytes(replayMsgBytes)
	seq := uint64(0)
	for b.Loop() {
		seq = seq%replayMsgs + 1
		data, err := s.Get("bench", seq)
		if err != nil || len(data) != replayMsgBytes || data[0] != byte(seq) || data[1] != byte(seq>>8) {
			b.Fatalf("get %d: %v", seq, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(before, "heap-open-MB")
	b.ReportMetric(heapInUseMB(), "heap-MB")
}

// BenchmarkMsgStoreOpen measures the reopen of a store holding a channel of
// 1M messages of 128 bytes.
func BenchmarkMsgStoreOpen(b *testing.B) {
	dir := b.TempDir()
	buildReplayStore(b, dir)
	for b.Loop() {
		s, err := OpenFileMsgStore(OSFS{}, dir, FileMsgStoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, last := s.FirstLast("bench"); last != replayMsgs {
			b.Fatalf("last %d", last)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(heapInUseMB(), "heap-MB")
}

package storage

import (
	"path/filepath"
	"testing"
)

// FuzzMsgSegmentRead feeds arbitrary bytes as a segment file and its index,
// either as the last segment of a channel (recovered at open) or as a sealed
// one followed by a valid last segment (read by Get): open and every read
// must return an error or data, never panic, and a store that opens must
// accept the next put.
func FuzzMsgSegmentRead(f *testing.F) {
	m := NewMemFS(MemFSOptions{})
	s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{SegmentBytesMax: 150})
	if err != nil {
		f.Fatal(err)
	}
	putRange(f, s, "foo", 1, 6)
	if err := s.Sync(); err != nil {
		f.Fatal(err)
	}
	s.Close()
	dir := "/msgs/" + encodeChannel("foo")
	seg, err := ReadFile(m, filepath.Join(dir, segName(1)))
	if err != nil {
		f.Fatal(err)
	}
	idx, err := ReadFile(m, filepath.Join(dir, indexName(1)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg, idx, false)
	f.Add(seg, idx, true)
	f.Add(seg, []byte{}, false)
	f.Add(seg[:len(seg)-3], idx, false)
	f.Add(seg, idx[:len(idx)-5], true)
	f.Add([]byte{}, []byte{}, false)
	f.Add(appendRecord(nil, recMsg, []byte{1, 0, 0}), appendIndexEntry(nil, 0, 0, 19), false)
	f.Fuzz(func(t *testing.T, seg, idx []byte, sealed bool) {
		m := NewMemFS(MemFSOptions{})
		if err := m.MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		mustWriteFile(t, m, filepath.Join(dir, segName(1)), seg, true).Close()
		mustWriteFile(t, m, filepath.Join(dir, indexName(1)), idx, true).Close()
		if sealed {
			// A valid last segment after the fuzzed one, at the seq the
			// fuzzed index claims comes next.
			next := 1 + uint64(len(idx)/indexEntryBytes)
			rec := appendRecord(nil, recMsg, make([]byte, msgHeaderBytes))
			rec[recordHeaderBytes] = byte(next)
			frameRecord(rec, recMsg)
			mustWriteFile(t, m, filepath.Join(dir, segName(next)), rec, true).Close()
			mustWriteFile(t, m, filepath.Join(dir, indexName(next)), nil, true).Close()
		}
		s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{SegmentBytesMax: 150})
		if err != nil {
			return
		}
		defer s.Close()
		first, last := s.FirstLast("foo")
		if first > last+1 {
			t.Fatalf("first %d last %d", first, last)
		}
		for seq := first; seq <= last && seq < first+1000; seq++ {
			s.Get("foo", seq)
		}
		s.SeqAtOrAfter("foo", 35)
		if err := s.Put("foo", last+1, 1<<40, []byte("next")); err != nil && first > 0 {
			t.Fatalf("put after open: %v", err)
		}
	})
}

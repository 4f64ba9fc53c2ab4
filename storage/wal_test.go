package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// testFS is an FS under test with a directory to use and, for MemFS, a way
// to crash it.
type testFS struct {
	name string
	fsys FS
	dir  string
	mem  *MemFS
}

// eachFS runs fn against a MemFS and an OSFS in t.TempDir().
func eachFS(t *testing.T, fn func(t *testing.T, tfs testFS)) {
	t.Run("memfs", func(t *testing.T) {
		m := NewMemFS(MemFSOptions{})
		fn(t, testFS{name: "memfs", fsys: m, dir: "/wal", mem: m})
	})
	t.Run("osfs", func(t *testing.T) {
		fn(t, testFS{name: "osfs", fsys: OSFS{}, dir: filepath.Join(t.TempDir(), "wal")})
	})
}

func openWAL(t *testing.T, fsys FS, dir string, opts WALOptions) *WAL {
	t.Helper()
	w, err := OpenWAL(fsys, dir, opts)
	if err != nil {
		t.Fatalf("open wal: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Type: new(raftpb.EntryNormal), Data: []byte(data)}
}

func ents(first, last, term uint64) []*raftpb.Entry {
	var es []*raftpb.Entry
	for i := first; i <= last; i++ {
		es = append(es, ent(i, term, fmt.Sprintf("e%d/t%d", i, term)))
	}
	return es
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

// describe renders everything raft.Storage shows of s, except snapshot data,
// as canonical text.
func describe(s raft.Storage) string {
	var b strings.Builder
	hs, cs, err := s.InitialState()
	fmt.Fprintf(&b, "hs term=%d vote=%d commit=%d cs=%v err=%v\n", hs.GetTerm(), hs.GetVote(), hs.GetCommit(), cs.GetVoters(), err)
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	fmt.Fprintf(&b, "first=%d last=%d\n", first, last)
	for i := first - 1; i <= last+1; i++ {
		term, err := s.Term(i)
		fmt.Fprintf(&b, "term(%d)=%d %v\n", i, term, err)
	}
	es, err := s.Entries(first, last+1, 1<<62)
	fmt.Fprintf(&b, "entries err=%v\n", err)
	for _, e := range es {
		fmt.Fprintf(&b, "  %d/%d %q\n", e.GetIndex(), e.GetTerm(), e.GetData())
	}
	snap, err := s.Snapshot()
	fmt.Fprintf(&b, "snapshot index=%d term=%d cs=%v err=%v\n", snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm(), snap.GetMetadata().GetConfState().GetVoters(), err)
	return b.String()
}

func TestWALSaveReopen(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		w := openWAL(t, tfs.fsys, tfs.dir, WALOptions{})
		if err := w.Save(hardState(1, 1, 0), ents(1, 5, 1), true); err != nil {
			t.Fatal(err)
		}
		// Overwrite a conflicting suffix from index 4.
		if err := w.Save(hardState(2, 2, 3), ents(4, 6, 2), true); err != nil {
			t.Fatal(err)
		}
		want := describe(w)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w2 := openWAL(t, tfs.fsys, tfs.dir, WALOptions{})
		if got := describe(w2); got != want {
			t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
		}
		if got, _ := w2.Term(5); got != 2 {
			t.Errorf("term(5) after overwrite: got %d, want 2", got)
		}
	})
}

func TestWALLockExcludesSecondOpen(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		openWAL(t, tfs.fsys, tfs.dir, WALOptions{})
		if w, err := OpenWAL(tfs.fsys, tfs.dir, WALOptions{}); err == nil {
			w.Close()
			t.Error("second open of a locked wal: got nil error")
		}
	})
}

// TestWALSegmentsAndCompaction checks that small segments are cut, that
// Compact removes the segments it no longer needs and that a WAL reopened
// from the remaining segments has the same state.
func TestWALSegmentsAndCompaction(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		opts := WALOptions{SegmentBytesMax: 300, Preallocate: true}
		w := openWAL(t, tfs.fsys, tfs.dir, opts)
		for i := uint64(1); i <= 100; i += 5 {
			if err := w.Save(hardState(1, 1, i), ents(i, i+4, 1), true); err != nil {
				t.Fatal(err)
			}
		}
		before := len(w.Segments())
		if before < 5 {
			t.Fatalf("got %d segments, want many with SegmentBytesMax 300", before)
		}
		if err := w.Compact(90); err != nil {
			t.Fatal(err)
		}
		after := w.Segments()
		if len(after) >= before || len(after) > 3 {
			t.Errorf("after Compact(90): %d segments (%v), had %d", len(after), after, before)
		}
		if err := w.Compact(90); !errors.Is(err, raft.ErrCompacted) {
			t.Errorf("second Compact(90): got %v, want ErrCompacted", err)
		}
		want := describe(w)
		w.Close()
		w2 := openWAL(t, tfs.fsys, tfs.dir, opts)
		if got := describe(w2); got != want {
			t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
		}
		names, err := tfs.fsys.List(tfs.dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(names); got != len(after)+1 { // segments + LOCK
			t.Errorf("files in dir: %v, want the %d segments and LOCK", names, len(after))
		}
	})
}

func TestWALSnapshot(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		w := openWAL(t, tfs.fsys, tfs.dir, WALOptions{SegmentBytesMax: 200})
		if err := w.Save(hardState(1, 1, 3), ents(1, 10, 1), true); err != nil {
			t.Fatal(err)
		}
		cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
		snap, err := w.CreateSnapshot(8, cs, []byte("state@8"))
		if err != nil {
			t.Fatal(err)
		}
		if snap.GetMetadata().GetTerm() != 1 || string(snap.GetData()) != "state@8" {
			t.Errorf("created snapshot: %v", snap)
		}
		if _, err := w.CreateSnapshot(8, nil, nil); !errors.Is(err, raft.ErrSnapOutOfDate) {
			t.Errorf("CreateSnapshot(8) twice: got %v, want ErrSnapOutOfDate", err)
		}
		if err := w.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(7)), Term: new(uint64(1))}}); !errors.Is(err, raft.ErrSnapOutOfDate) {
			t.Errorf("ApplySnapshot(7): got %v, want ErrSnapOutOfDate", err)
		}
		applied := &raftpb.Snapshot{
			Data:     []byte("state@20"),
			Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(20)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}},
		}
		if err := w.ApplySnapshot(applied); err != nil {
			t.Fatal(err)
		}
		if err := w.Save(hardState(3, 2, 20), ents(21, 22, 3), true); err != nil {
			t.Fatal(err)
		}
		want := describe(w)
		w.Close()
		w2 := openWAL(t, tfs.fsys, tfs.dir, WALOptions{SegmentBytesMax: 200})
		if got := describe(w2); got != want {
			t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
		}
		if s, _ := w2.Snapshot(); s.Data != nil {
			t.Errorf("snapshot data after reopen: %q, want nil until SetSnapshotData", s.Data)
		}
		if err := w2.SetSnapshotData(19, nil); err == nil {
			t.Error("SetSnapshotData at the wrong index: got nil error")
		}
		if err := w2.SetSnapshotData(20, []byte("state@20")); err != nil {
			t.Fatal(err)
		}
		if s, _ := w2.Snapshot(); !proto.Equal(s, raftpb.EnsureSnapshot(applied)) {
			t.Errorf("snapshot: got %v, want %v", s, applied)
		}
	})
}

// TestWALCrashDropsUnsynced writes, syncs, writes more without sync, crashes
// and checks that exactly the synced state comes back.
func TestWALCrashDropsUnsynced(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	w := openWAL(t, m, "/wal", WALOptions{})
	if err := w.Save(hardState(1, 1, 2), ents(1, 5, 1), true); err != nil {
		t.Fatal(err)
	}
	want := describe(w)
	if err := w.Save(hardState(2, 2, 5), ents(6, 9, 2), false); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	w2 := openWAL(t, m, "/wal", WALOptions{})
	if got := describe(w2); got != want {
		t.Errorf("after crash:\n%s\nwant:\n%s", got, want)
	}
}

// TestWALTornTail cuts the last segment inside its last record, at every
// possible byte, and checks that reopening drops exactly that record and
// that the WAL then works.
func TestWALTornTail(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	w := openWAL(t, m, "/wal", WALOptions{})
	if err := w.Save(nil, ents(1, 3, 1), true); err != nil {
		t.Fatal(err)
	}
	want := describe(w)
	if err := w.Save(nil, ents(4, 4, 1), true); err != nil {
		t.Fatal(err)
	}
	seg := "/wal/" + w.Segments()[0]
	w.Close()
	full, err := ReadFile(m, seg)
	if err != nil {
		t.Fatal(err)
	}
	last, err := appendBatch(nil, ents(4, 4, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	recordBytes := len(last)
	for cut := len(full) - recordBytes; cut < len(full); cut++ {
		f, err := m.Open(seg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(full, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(int64(cut)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		w, err := OpenWAL(m, "/wal", WALOptions{})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if got := describe(w); got != want {
			t.Fatalf("cut at %d:\n%s\nwant:\n%s", cut, got, want)
		}
		w.Close()
	}
	// A flipped bit in the last record is a torn tail too.
	w = openWAL(t, m, "/wal", WALOptions{})
	if err := w.Save(nil, ents(4, 4, 1), true); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := m.FlipBit(seg, int64(len(full)-3), 2); err != nil {
		t.Fatal(err)
	}
	w = openWAL(t, m, "/wal", WALOptions{})
	if got := describe(w); got != want {
		t.Fatalf("flipped last record:\n%s\nwant:\n%s", got, want)
	}
	// And the WAL appends after the truncated tail.
	if err := w.Save(nil, ents(4, 5, 2), true); err != nil {
		t.Fatal(err)
	}
	want = describe(w)
	w.Close()
	w = openWAL(t, m, "/wal", WALOptions{})
	if got := describe(w); got != want {
		t.Fatalf("after appending past a torn tail:\n%s\nwant:\n%s", got, want)
	}
}

// TestWALCorruption flips bits before the tail and checks that every one is
// reported as ErrCorrupt, never skipped.
func TestWALCorruption(t *testing.T) {
	setup := func(t *testing.T) (*MemFS, []string) {
		m := NewMemFS(MemFSOptions{})
		w := openWAL(t, m, "/wal", WALOptions{SegmentBytesMax: 400})
		for i := uint64(1); i <= 60; i++ {
			if err := w.Save(hardState(1, 1, i), ents(i, i, 1), true); err != nil {
				t.Fatal(err)
			}
		}
		segs := w.Segments()
		if len(segs) < 3 {
			t.Fatalf("got %d segments, want at least 3", len(segs))
		}
		w.Close()
		return m, segs
	}
	// recordOffset returns the offset of the middle record of a segment.
	recordOffset := func(data []byte) int64 {
		recs, _, err := scanRecords("test", data)
		if err != nil || len(recs) < 3 {
			t.Fatalf("scan: %d records, %v", len(recs), err)
		}
		return recs[len(recs)/2].offBytes
	}
	tests := []struct {
		name    string
		segment func(segs []string) string
		offset  func(data []byte) int64
	}{
		{"payload of a middle record of the last segment", func(s []string) string { return s[len(s)-1] }, func(d []byte) int64 { return recordOffset(d) + recordHeaderBytes + 1 }},
		{"length field of a middle record", func(s []string) string { return s[len(s)-1] }, func(d []byte) int64 { return recordOffset(d) + 1 }},
		{"first segment", func(s []string) string { return s[0] }, func(d []byte) int64 { return recordOffset(d) + 20 }},
		{"tail of a segment that is not the last", func(s []string) string { return s[1] }, func(d []byte) int64 { return int64(len(d)) - 1 }},
		{"segment header", func(s []string) string { return s[1] }, func(d []byte) int64 { return 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, segs := setup(t)
			name := "/wal/" + tt.segment(segs)
			data, err := ReadFile(m, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.FlipBit(name, tt.offset(data), 5); err != nil {
				t.Fatal(err)
			}
			w, err := OpenWAL(m, "/wal", WALOptions{SegmentBytesMax: 400})
			if err == nil {
				w.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), filepath.Base(name)) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q does not name the segment and offset", err)
			}
		})
	}
	t.Run("missing segment", func(t *testing.T) {
		m, segs := setup(t)
		if err := m.Remove("/wal/" + segs[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenWAL(m, "/wal", WALOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
}

// TestWALWriteFaultIsSticky checks that after a failed sync the WAL refuses
// writes, and that what was synced before survives a crash.
func TestWALWriteFaultIsSticky(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	w := openWAL(t, m, "/wal", WALOptions{})
	if err := w.Save(hardState(1, 1, 1), ents(1, 2, 1), true); err != nil {
		t.Fatal(err)
	}
	want := describe(w)
	m.InjectFault(OpSync, "/wal", nil)
	if err := w.Save(nil, ents(3, 3, 1), true); !errors.Is(err, ErrInjected) {
		t.Fatalf("save with a sync fault: got %v, want ErrInjected", err)
	}
	if got := describe(w); got != want {
		t.Errorf("memory state changed by a failed save:\n%s\nwant:\n%s", got, want)
	}
	m.ClearFaults()
	if err := w.Save(nil, ents(3, 3, 1), true); err == nil {
		t.Fatal("save after a failed sync: got nil error")
	}
	m.Crash()
	w2 := openWAL(t, m, "/wal", WALOptions{})
	if got := describe(w2); got != want {
		t.Errorf("after crash:\n%s\nwant:\n%s", got, want)
	}
}

func TestWALStorageErrors(t *testing.T) {
	w := openWAL(t, NewMemFS(MemFSOptions{}), "/wal", WALOptions{})
	if _, err := w.Entries(1, 1, 100); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Entries on an empty log: got %v, want ErrUnavailable", err)
	}
	if err := w.Save(nil, ents(1, 10, 1), false); err != nil {
		t.Fatal(err)
	}
	if err := w.Compact(4); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Entries(4, 6, 100); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Entries(4, 6): got %v, want ErrCompacted", err)
	}
	if _, err := w.Term(3); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Term(3): got %v, want ErrCompacted", err)
	}
	if _, err := w.Term(11); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Term(11): got %v, want ErrUnavailable", err)
	}
	es, err := w.Entries(5, 11, 1)
	if err != nil || len(es) != 1 {
		t.Errorf("Entries(5, 11, maxSize 1): got %d entries, %v, want 1", len(es), err)
	}
	// The caller may append to the returned slice without harm.
	_ = append(es, ent(99, 9, "x"))
	if got, _ := w.Term(6); got != 1 {
		t.Errorf("Term(6) after appending to a returned slice: got %d, want 1", got)
	}
	mustPanic(t, "Save with a gap", func() { w.Save(nil, ents(12, 12, 1), false) })
	mustPanic(t, "Compact past the end", func() { w.Compact(11) })
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: did not panic", what)
		}
	}()
	fn()
}

// TestWALPreallocate: with Preallocate the active segment's space is
// reserved a step ahead of its writes (the whole segment when it is
// smaller), the zeros after the last batch read as the end of the log, a
// torn write into them is cut off on open and a step reserved again, and a
// cut segment keeps only its records.
func TestWALPreallocate(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		const segBytes = 64 << 10 // less than preallocStepBytes: the step
		opts := WALOptions{SegmentBytesMax: segBytes, Preallocate: true}
		w := openWAL(t, tfs.fsys, tfs.dir, opts)
		if err := w.Save(hardState(1, 1, 10), ents(1, 10, 1), true); err != nil {
			t.Fatal(err)
		}
		active := func() (string, int64) { return activeSegment(t, tfs, w) }
		name, size := active()
		if size != segBytes {
			t.Fatalf("active segment is %d bytes, want %d preallocated", size, segBytes)
		}
		want := describe(w)
		w.Close()

		// A torn write after the last batch: half a record header.
		f, err := tfs.fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		end := int64(0)
		rec := appendRecord(nil, recBatch, []byte("torn"))
		buf := make([]byte, segBytes)
		if _, err := f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		for end = segBytes; end > 0 && buf[end-1] == 0; end-- {
		}
		if _, err := f.WriteAt(rec[:8], end+64); err != nil {
			t.Fatal(err)
		}
		f.Close()

		w = openWAL(t, tfs.fsys, tfs.dir, opts)
		if got := describe(w); got != want {
			t.Fatalf("after a torn write into the preallocated space:\n%s\nwant:\n%s", got, want)
		}
		if _, size := active(); size != end+segBytes {
			t.Errorf("after the torn tail was cut the segment is %d bytes, want %d: its records and a step reserved again", size, end+segBytes)
		}
		f, err = tfs.fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		torn := make([]byte, 8)
		if _, err := f.ReadAt(torn, end+64); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !bytes.Equal(torn, make([]byte, 8)) {
			t.Errorf("the torn write is still there: %x", torn)
		}
		// Fill past the segment: it is cut back to its records.
		first := name
		for i := uint64(11); len(w.Segments()) < 2; i += 100 {
			big := ents(i, i+99, 1)
			for _, e := range big {
				e.Data = make([]byte, 100)
			}
			if err := w.Save(hardState(1, 1, i+99), big, true); err != nil {
				t.Fatal(err)
			}
		}
		f, err = tfs.fsys.Open(first)
		if err != nil {
			t.Fatal(err)
		}
		cutSize, _ := f.Size()
		tail := make([]byte, 16)
		if _, err := f.ReadAt(tail, cutSize-16); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if bytes.Count(tail, []byte{0}) == len(tail) {
			t.Errorf("the cut segment ends in zeros (%d bytes): it kept its preallocation", cutSize)
		}
		want = describe(w)
		w.Close()
		w = openWAL(t, tfs.fsys, tfs.dir, opts)
		if got := describe(w); got != want {
			t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
		}
		w.Close()
	})
}

// TestWALPreallocateStep: a segment larger than preallocStepBytes is not
// reserved whole: the log reserves a step ahead of its writes, so that
// opening it reads little more than its records.
func TestWALPreallocateStep(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		opts := WALOptions{SegmentBytesMax: 4 * preallocStepBytes, Preallocate: true}
		w := openWAL(t, tfs.fsys, tfs.dir, opts)
		defer func() { w.Close() }()
		size := func() int64 { _, n := activeSegment(t, tfs, w); return n }
		if err := w.Save(hardState(1, 1, 1), ents(1, 1, 1), true); err != nil {
			t.Fatal(err)
		}
		if got := size(); got != preallocStepBytes {
			t.Fatalf("a new segment holds %d bytes, want the first step, %d", got, preallocStepBytes)
		}
		// A batch that crosses the reserved end reserves a step past itself.
		big := ents(2, 2, 1)
		big[0].Data = make([]byte, preallocStepBytes)
		if err := w.Save(hardState(1, 1, 2), big, true); err != nil {
			t.Fatal(err)
		}
		if got := w.activeBytes + preallocStepBytes; size() != got {
			t.Errorf("after a batch past the reserved end the segment holds %d bytes, want %d", size(), got)
		}
		// That entry's data is all zeros, like the reserved space after
		// it: it still reads back whole.
		want := describe(w)
		w.Close()
		w = openWAL(t, tfs.fsys, tfs.dir, opts)
		if got := describe(w); got != want {
			t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
		}
		e, err := w.Entries(2, 3, math.MaxUint64)
		if err != nil || len(e) != 1 || len(e[0].Data) != preallocStepBytes {
			t.Errorf("entry 2 after reopen: %d entries, err %v", len(e), err)
		}
	})
}

// activeSegment returns the path and size of w's last segment.
func activeSegment(t *testing.T, tfs testFS, w *WAL) (string, int64) {
	t.Helper()
	segs := w.Segments()
	name := filepath.Join(tfs.dir, segs[len(segs)-1])
	f, err := tfs.fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	return name, size
}

// TestWALPreallocateOnFullDisk: a disk with no space left to reserve (but
// room for the writes) does not stop the log: it opens, cuts segments and
// writes without the reservation, as without Preallocate, and reserves
// again once it can. Any other reservation error still fails the write.
func TestWALPreallocateOnFullDisk(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	tfs := testFS{name: "memfs", fsys: m, dir: "/wal", mem: m}
	const segBytes = 64 << 10
	opts := WALOptions{SegmentBytesMax: segBytes, Preallocate: true}
	m.InjectFault(OpAllocate, "/wal", syscall.ENOSPC)
	w := openWAL(t, m, "/wal", opts)
	size := func() int64 { _, n := activeSegment(t, tfs, w); return n }
	index := uint64(1)
	for seg := 0; len(w.Segments()) < 3; seg++ {
		if seg > 100 {
			t.Fatal("the log cut no segment in 100 batches")
		}
		batch := ents(index, index+9, 1)
		for _, e := range batch {
			e.Data = make([]byte, 1000)
		}
		if err := w.Save(hardState(1, 1, index+9), batch, true); err != nil {
			t.Fatalf("save on a disk with no space to reserve: %v", err)
		}
		index += 10
		if got := size(); got != w.activeBytes {
			t.Fatalf("active segment holds %d bytes, want just its records (%d): nothing could be reserved", got, w.activeBytes)
		}
	}
	want := describe(w)
	w.Close()
	w = openWAL(t, m, "/wal", opts)
	if got := describe(w); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
	// Space again: the next write reserves a step past itself.
	m.ClearFaults()
	if err := w.Save(hardState(1, 1, index), ents(index, index, 1), true); err != nil {
		t.Fatal(err)
	}
	if got, wantSize := size(), w.activeBytes+w.preallocStep(); got != wantSize {
		t.Errorf("with space again the segment holds %d bytes, want %d reserved", got, wantSize)
	}
	// Any other failure to reserve is the disk failing: the write fails.
	big := ents(index+1, index+1, 1)
	big[0].Data = make([]byte, 2*preallocStepBytes)
	m.InjectFault(OpAllocate, "/wal", nil)
	if err := w.Save(hardState(1, 1, index+1), big, true); !errors.Is(err, ErrInjected) {
		t.Fatalf("save when reserving fails: %v, want the injected error", err)
	}
}

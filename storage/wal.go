package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Record types of the WAL. The numbers are part of the on-disk format.
const (
	// recSegment opens every segment: seq, lastIndex, lastTerm (3 x uint64 LE),
	// the state of the log when the segment was cut.
	recSegment byte = 1
	// recBatch is one Save: entries and a hard state, applied all or
	// nothing. Payload: uvarint entry count, then per entry a uvarint length
	// and a marshaled raftpb.Entry, then a uvarint length and a marshaled
	// raftpb.HardState (length 0: no hard state).
	recBatch byte = 2
	// recHardState is a marshaled raftpb.HardState.
	recHardState byte = 3
	// recSnapshotMeta is a marshaled raftpb.SnapshotMetadata that becomes the
	// current snapshot without touching the log (CreateSnapshot, and the
	// state written after every segment header).
	recSnapshotMeta byte = 4
	// recSnapshotApplied is a marshaled raftpb.SnapshotMetadata that replaces
	// the whole log (ApplySnapshot).
	recSnapshotApplied byte = 5
	// recCompact is index, term (2 x uint64 LE): entries up to index are gone.
	recCompact byte = 6
)

// SegmentBytesMaxDefault is the default size at which a WAL segment is cut.
const SegmentBytesMaxDefault = 64 << 20

const segmentSuffix = ".wal"

// WALOptions configures a WAL.
type WALOptions struct {
	// SegmentBytesMax is the size after which the next write starts a new
	// segment; 0 means SegmentBytesMaxDefault. One batch is never split, so
	// a segment can be larger.
	SegmentBytesMax int64
	// Preallocate reserves the active segment's space ahead of its writes
	// (File.Allocate, preallocStepBytes at a time), so that a batch's sync
	// records no new size: on the benchmark machine that took a third off
	// each fdatasync.
	Preallocate bool
}

// preallocStepBytes is how far ahead of its writes a preallocated segment's
// space is reserved: one sync in this many bytes of log records a new size,
// and opening the log reads at most this much past the last record.
const preallocStepBytes = 4 << 20

// WAL is a segmented write-ahead log for raft. It implements raft.Storage
// with the entries since the last compaction held in memory, like
// raft.MemoryStorage, and makes every change durable in segment files of
// one directory. See the package documentation for the format.
//
// Writes are Save, ApplySnapshot, CreateSnapshot and Compact. Once a write
// fails, the state on disk is unknown: the WAL refuses every later write and
// must be closed and reopened.
type WAL struct {
	mu   sync.Mutex
	fsys FS
	dir  string
	opts WALOptions
	lock io.Closer

	// segs are the segment files, oldest first; the last one is active.
	segs        []segmentInfo
	active      File
	activeBytes int64 // write offset in active
	allocBytes  int64 // with Preallocate: active's size, reserved up to there
	activeData  bool  // active holds a record past its header
	buf         []byte

	// ents[i] has index ents[0].GetIndex()+i; ents[0] is a dummy entry
	// holding the index and term of the last compacted entry.
	ents      []*raftpb.Entry
	hardState *raftpb.HardState
	snapshot  *raftpb.Snapshot

	failed error // sticky: the first write error
	closed bool
}

// segmentInfo names a segment: seq counts segments from 0, firstIndex is the
// index following the last entry of the log when the segment was cut.
type segmentInfo struct {
	seq        uint64
	firstIndex uint64
}

func (s segmentInfo) name() string {
	return fmt.Sprintf("%016x-%016x%s", s.seq, s.firstIndex, segmentSuffix)
}

// parseSegmentName parses a segment file name.
func parseSegmentName(name string) (segmentInfo, bool) {
	var s segmentInfo
	if len(name) != 16+1+16+len(segmentSuffix) || !strings.HasSuffix(name, segmentSuffix) {
		return s, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &s.seq, &s.firstIndex); err != nil {
		return s, false
	}
	return s, s.name() == name
}

var _ raft.Storage = (*WAL)(nil)

// OpenWAL opens the WAL in dir, creating it if needed, and replays it. A torn
// tail of the last segment is truncated; any other damage returns an error
// wrapping ErrCorrupt.
func OpenWAL(fsys FS, dir string, opts WALOptions) (*WAL, error) {
	if opts.SegmentBytesMax <= 0 {
		opts.SegmentBytesMax = SegmentBytesMaxDefault
	}
	if err := MkdirAllSync(fsys, dir); err != nil {
		return nil, fmt.Errorf("open wal %s: %w", dir, err)
	}
	lock, err := fsys.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("open wal %s: %w", dir, err)
	}
	w := &WAL{
		fsys:      fsys,
		dir:       dir,
		opts:      opts,
		lock:      lock,
		ents:      []*raftpb.Entry{{Index: new(uint64(0)), Term: new(uint64(0))}},
		snapshot:  raftpb.EnsureSnapshot(nil),
		hardState: nil,
	}
	if err := w.open(); err != nil {
		if w.active != nil {
			w.active.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("open wal %s: %w", dir, err)
	}
	return w, nil
}

// open lists the segments, replays them and prepares the active one.
func (w *WAL) open() error {
	names, err := w.fsys.List(w.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if s, ok := parseSegmentName(name); ok {
			w.segs = append(w.segs, s)
		}
	}
	for i := 1; i < len(w.segs); i++ {
		if w.segs[i].seq != w.segs[i-1].seq+1 {
			return fmt.Errorf("%w: segment %s follows %s: a segment is missing", ErrCorrupt, w.segs[i].name(), w.segs[i-1].name())
		}
	}
	r := replay{w: w, exact: true}
	for i, s := range w.segs {
		last := i == len(w.segs)-1
		name := s.name()
		data, err := ReadFile(w.fsys, filepath.Join(w.dir, name))
		if err != nil {
			return err
		}
		recs, endBytes, err := scanRecords(name, data)
		if err != nil {
			return err
		}
		if endBytes < int64(len(data)) && !last {
			return fmt.Errorf("%w: %s: bad record at offset %d of a segment that is not the last", ErrCorrupt, name, endBytes)
		}
		if len(recs) == 0 {
			// Only the creation of the very first segment, or of a segment
			// that follows a durable one, can leave a segment without header.
			if !last || (i == 0 && s.seq != 0) {
				return fmt.Errorf("%w: %s: no segment header", ErrCorrupt, name)
			}
			// The segment was being created when the process stopped: its
			// header never became durable, so nothing was written after it.
			if err := w.fsys.Remove(filepath.Join(w.dir, name)); err != nil {
				return err
			}
			if err := w.fsys.SyncDir(w.dir); err != nil {
				return err
			}
			w.segs = w.segs[:i]
			break
		}
		for _, rec := range recs {
			if err := r.apply(name, s, i == 0, rec); err != nil {
				return err
			}
		}
		if last {
			if err := w.openActive(name, endBytes, int64(len(data)), len(recs) > segmentHeaderRecords(recs)); err != nil {
				return err
			}
		}
	}
	if !r.exact {
		return fmt.Errorf("%w: %s: the segments before it were removed but no compaction or snapshot covers index %d", ErrCorrupt, w.segs[0].name(), r.exactAfter)
	}
	if len(w.segs) == 0 {
		return w.cut()
	}
	if w.active == nil {
		// The last segment was removed above: the one before is active again.
		s := w.segs[len(w.segs)-1]
		f, err := w.fsys.Open(filepath.Join(w.dir, s.name()))
		if err != nil {
			return err
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return err
		}
		w.active, w.activeBytes, w.activeData, w.allocBytes = f, size, true, size
	}
	return nil
}

// segmentHeaderRecords returns how many records at the start of recs were
// written with the segment header.
func segmentHeaderRecords(recs []record) int {
	n := 0
	for i, r := range recs {
		if i > 0 && r.typ != recHardState && r.typ != recSnapshotMeta {
			break
		}
		n++
		if r.typ == recSnapshotMeta {
			break
		}
	}
	return n
}

// openActive opens the last segment for appending at endBytes, cutting off a
// torn tail (and restoring preallocation) if the file is longer.
func (w *WAL) openActive(name string, endBytes, sizeBytes int64, hasData bool) error {
	f, err := w.fsys.Open(filepath.Join(w.dir, name))
	if err != nil {
		return err
	}
	if endBytes < sizeBytes {
		err = f.Truncate(endBytes)
		if err == nil && !w.opts.Preallocate {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("truncate torn tail of %s at offset %d: %w", name, endBytes, err)
		}
	}
	allocBytes := endBytes
	if w.opts.Preallocate {
		allocBytes, err = reserve(f, endBytes, endBytes+w.preallocStep())
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("preallocate %s: %w", name, err)
		}
	}
	w.active, w.activeBytes, w.activeData, w.allocBytes = f, endBytes, hasData, allocBytes
	return nil
}

// replay rebuilds the in-memory state from records.
type replay struct {
	w *WAL
	// exact is false while the log starts from the header of a segment whose
	// predecessors were removed: until a compaction or snapshot record covers
	// that header's last index, the dummy entry is a placeholder.
	exact      bool
	exactAfter uint64
}

func (r *replay) apply(name string, s segmentInfo, first bool, rec record) error {
	w := r.w
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: record at offset %d: %s", ErrCorrupt, name, rec.offBytes, fmt.Sprintf(format, args...))
	}
	switch rec.typ {
	case recSegment:
		if rec.offBytes != 0 || len(rec.payload) != 24 {
			return bad("misplaced or malformed segment header")
		}
		seq := binary.LittleEndian.Uint64(rec.payload[0:])
		lastIndex := binary.LittleEndian.Uint64(rec.payload[8:])
		lastTerm := binary.LittleEndian.Uint64(rec.payload[16:])
		if seq != s.seq || lastIndex+1 != s.firstIndex {
			return bad("header seq %d last index %d does not match the file name", seq, lastIndex)
		}
		if first {
			if seq != 0 {
				r.exact, r.exactAfter = false, lastIndex
			}
			w.ents = []*raftpb.Entry{{Index: new(lastIndex), Term: new(lastTerm)}}
			return nil
		}
		if r.exact {
			if got := w.lastIndex(); got != lastIndex {
				return bad("segment starts after index %d but the log before it ends at %d", lastIndex, got)
			}
			if got := w.ents[len(w.ents)-1].GetTerm(); got != lastTerm {
				return bad("segment starts after term %d but the log before it ends with term %d", lastTerm, got)
			}
		}
	case recBatch:
		if rec.offBytes == 0 {
			return bad("segment does not start with a header")
		}
		es, hs, err := decodeBatch(rec.payload)
		if err != nil {
			return bad("batch: %v", err)
		}
		for _, e := range es {
			if offset := w.ents[0].GetIndex(); e.GetIndex() <= offset {
				// Save never writes compacted entries, so the log was cut
				// at e.GetIndex() while this replay's dummy entry was only
				// a placeholder: everything after it is gone.
				if r.exact {
					return bad("entry %d at or before the compacted index %d", e.GetIndex(), offset)
				}
				w.ents = w.ents[:1]
				continue
			}
			if err := w.appendEntries([]*raftpb.Entry{e}); err != nil {
				return bad("%v", err)
			}
		}
		if hs != nil {
			w.hardState = hs
		}
	case recHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(rec.payload, hs); err != nil {
			return bad("hard state: %v", err)
		}
		w.hardState = hs
	case recSnapshotMeta, recSnapshotApplied:
		m := &raftpb.SnapshotMetadata{}
		if err := proto.Unmarshal(rec.payload, m); err != nil {
			return bad("snapshot metadata: %v", err)
		}
		w.snapshot = raftpb.EnsureSnapshot(&raftpb.Snapshot{Metadata: m})
		if rec.typ == recSnapshotApplied {
			w.ents = []*raftpb.Entry{{Index: new(m.GetIndex()), Term: new(m.GetTerm())}}
			if m.GetIndex() >= r.exactAfter {
				r.exact = true
			}
		}
	case recCompact:
		if len(rec.payload) != 16 {
			return bad("malformed compaction")
		}
		index := binary.LittleEndian.Uint64(rec.payload[0:])
		term := binary.LittleEndian.Uint64(rec.payload[8:])
		offset := w.ents[0].GetIndex()
		switch {
		case index < offset:
			// Already covered by the header this replay started from.
		case index == offset:
			w.ents[0] = &raftpb.Entry{Index: new(index), Term: new(term)}
		case index > w.lastIndex():
			return bad("compaction to %d beyond last index %d", index, w.lastIndex())
		default:
			if got := w.ents[index-offset].GetTerm(); got != term {
				return bad("compaction to %d with term %d but the entry has term %d", index, term, got)
			}
			w.compact(index)
		}
		if index >= r.exactAfter {
			r.exact = true
		}
	default:
		return bad("unknown record type %d", rec.typ)
	}
	return nil
}

// cut syncs and closes the active segment, if any, and starts the next one
// with a header holding the current state. The new segment is durable, name
// included, before cut returns.
func (w *WAL) cut() error {
	next := segmentInfo{seq: 0, firstIndex: w.lastIndex() + 1}
	if w.active != nil {
		if w.opts.Preallocate {
			if err := w.active.Truncate(w.activeBytes); err != nil {
				return err
			}
		}
		// Sync even if the caller did not ask: a later segment must never
		// survive a crash that a hole in this one does not.
		if err := w.active.Sync(); err != nil {
			return err
		}
		if err := w.active.Close(); err != nil {
			return err
		}
		w.active = nil
		next.seq = w.segs[len(w.segs)-1].seq + 1
	}
	name := filepath.Join(w.dir, next.name())
	f, err := w.fsys.Create(name)
	if err != nil {
		return err
	}
	allocBytes := int64(0)
	if w.opts.Preallocate {
		if allocBytes, err = reserve(f, 0, w.preallocStep()); err != nil {
			f.Close()
			return err
		}
	}
	var h [24]byte
	binary.LittleEndian.PutUint64(h[0:], next.seq)
	binary.LittleEndian.PutUint64(h[8:], w.lastIndex())
	binary.LittleEndian.PutUint64(h[16:], w.ents[len(w.ents)-1].GetTerm())
	// Not w.buf: cut runs while w.buf holds the batch being written.
	buf := appendRecord(nil, recSegment, h[:])
	if w.hardState != nil {
		buf = appendRecord(buf, recHardState, marshal(w.hardState))
	}
	buf = appendRecord(buf, recSnapshotMeta, marshal(w.snapshot.GetMetadata()))
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := w.fsys.SyncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.segs = append(w.segs, next)
	w.active, w.activeBytes, w.activeData, w.allocBytes = f, int64(len(buf)), false, max(allocBytes, int64(len(buf)))
	return nil
}

// reserve extends f's reserved space from size (what it holds now) to
// sizeBytes and returns the new size. A disk too full to reserve that much
// is not an error here: the log goes on without the reservation, as it
// would without Preallocate, and returns size; a write that does not fit
// then fails on its own. Any other error is returned.
func reserve(f File, size, sizeBytes int64) (int64, error) {
	err := f.Allocate(sizeBytes)
	if err == nil {
		return sizeBytes, nil
	}
	if errors.Is(err, syscall.ENOSPC) {
		return size, nil
	}
	return size, err
}

// preallocStep is how far ahead of the writes the active segment's space is
// reserved.
func (w *WAL) preallocStep() int64 { return min(w.opts.SegmentBytesMax, preallocStepBytes) }

// appendBatch appends a recBatch record of entries and hs (nil for none)
// to buf.
func appendBatch(buf []byte, entries []*raftpb.Entry, hs *raftpb.HardState) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderBytes)...)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	opts := proto.MarshalOptions{Deterministic: true}
	for _, e := range entries {
		buf = binary.AppendUvarint(buf, uint64(opts.Size(e)))
		var err error
		if buf, err = opts.MarshalAppend(buf, e); err != nil {
			return nil, fmt.Errorf("marshal entry %d: %w", e.GetIndex(), err)
		}
	}
	if hs == nil {
		buf = binary.AppendUvarint(buf, 0)
	} else {
		b := marshal(hs)
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	frameRecord(buf[start:], recBatch)
	return buf, nil
}

// decodeBatch decodes the payload of a recBatch record.
func decodeBatch(p []byte) ([]*raftpb.Entry, *raftpb.HardState, error) {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errors.New("bad length")
		}
		b := p[k : k+int(n)]
		p = p[k+int(n):]
		return b, nil
	}
	count, k := binary.Uvarint(p)
	if k <= 0 || count > uint64(len(p)) {
		return nil, nil, errors.New("bad entry count")
	}
	p = p[k:]
	es := make([]*raftpb.Entry, 0, count)
	for i := range count {
		b, err := next()
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if e.Index == nil || e.Term == nil {
			return nil, nil, fmt.Errorf("entry %d without index or term", i)
		}
		if len(es) > 0 && e.GetIndex() != es[len(es)-1].GetIndex()+1 {
			return nil, nil, fmt.Errorf("entry %d follows entry %d", e.GetIndex(), es[len(es)-1].GetIndex())
		}
		es = append(es, e)
	}
	b, err := next()
	if err != nil {
		return nil, nil, fmt.Errorf("hard state: %w", err)
	}
	if len(p) != 0 {
		return nil, nil, fmt.Errorf("%d trailing bytes", len(p))
	}
	if len(b) == 0 {
		return es, nil, nil
	}
	hs := &raftpb.HardState{}
	if err := proto.Unmarshal(b, hs); err != nil {
		return nil, nil, fmt.Errorf("hard state: %w", err)
	}
	return es, hs, nil
}

// marshal encodes m deterministically.
func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("storage: marshal %T: %v", m, err))
	}
	return b
}

// write appends the records in buf to the active segment, cutting a new one
// first if the active one is full, and syncs if sync is set. The caller holds
// w.mu and updates the memory state only if write succeeds.
func (w *WAL) write(buf []byte, sync bool) error {
	if w.closed {
		return errors.New("wal closed")
	}
	if w.failed != nil {
		return fmt.Errorf("wal failed earlier: %w", w.failed)
	}
	err := w.writeLocked(buf, sync)
	if err != nil {
		w.failed = err
	}
	return err
}

func (w *WAL) writeLocked(buf []byte, sync bool) error {
	if len(buf) == 0 {
		if !sync {
			return nil
		}
		return w.active.Sync()
	}
	if w.activeData && w.activeBytes >= w.opts.SegmentBytesMax {
		if err := w.cut(); err != nil {
			return fmt.Errorf("cut segment: %w", err)
		}
	}
	if end := w.activeBytes + int64(len(buf)); w.opts.Preallocate && end > w.allocBytes {
		allocBytes, err := reserve(w.active, w.allocBytes, end+w.preallocStep())
		if err != nil {
			return err
		}
		w.allocBytes = allocBytes
	}
	if _, err := w.active.WriteAt(buf, w.activeBytes); err != nil {
		return err
	}
	w.activeBytes += int64(len(buf))
	w.activeData = true
	if sync {
		if err := w.active.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// Save appends entries to the log, discarding any existing entries at or
// after the index of the first one, and records hardState unless it is nil
// or empty. With mustSync, one fsync makes the whole batch durable before
// Save returns (pass raft's Ready.MustSync). Entries already compacted are
// ignored. Entries must be contiguous and must not leave a gap after the
// last index: raft guarantees both, and Save panics otherwise.
func (w *WAL) Save(hardState *raftpb.HardState, entries []*raftpb.Entry, mustSync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 1; i < len(entries); i++ {
		if entries[i].GetIndex() != entries[i-1].GetIndex()+1 {
			panic(fmt.Sprintf("storage: save: entry %d follows entry %d", entries[i].GetIndex(), entries[i-1].GetIndex()))
		}
	}
	entries = w.trimCompacted(entries)
	if len(entries) > 0 && entries[0].GetIndex() > w.lastIndex()+1 {
		panic(fmt.Sprintf("storage: save: missing log entry [last: %d, append at: %d]", w.lastIndex(), entries[0].GetIndex()))
	}
	hasState := !raft.IsEmptyHardState(hardState)
	if len(entries) == 0 && !hasState {
		if mustSync {
			return w.syncLocked()
		}
		return nil
	}
	var hs *raftpb.HardState
	if hasState {
		hs = hardState
	}
	buf, err := appendBatch(w.buf[:0], entries, hs)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	w.buf = buf
	if err := w.write(buf, mustSync); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := w.appendEntries(entries); err != nil {
		panic(fmt.Sprintf("storage: save: %v", err))
	}
	if hasState {
		w.hardState = proto.Clone(hardState).(*raftpb.HardState)
	}
	return nil
}

// Sync makes every write so far durable.
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.syncLocked()
}

func (w *WAL) syncLocked() error {
	if err := w.write(nil, true); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// trimCompacted drops the entries at or before the last compacted index.
func (w *WAL) trimCompacted(entries []*raftpb.Entry) []*raftpb.Entry {
	if len(entries) == 0 {
		return entries
	}
	first := w.ents[0].GetIndex() + 1
	if entries[len(entries)-1].GetIndex() < first {
		return nil
	}
	if entries[0].GetIndex() < first {
		entries = entries[first-entries[0].GetIndex():]
	}
	return entries
}

// appendEntries applies contiguous entries to the memory log like
// raft.MemoryStorage.Append, returning an error for a gap.
func (w *WAL) appendEntries(entries []*raftpb.Entry) error {
	entries = w.trimCompacted(entries)
	if len(entries) == 0 {
		return nil
	}
	offset := entries[0].GetIndex() - w.ents[0].GetIndex()
	if offset > uint64(len(w.ents)) {
		return fmt.Errorf("missing log entry [last: %d, append at: %d]", w.lastIndex(), entries[0].GetIndex())
	}
	if offset == uint64(len(w.ents)) {
		// A plain append: amortized O(1). (Copying the whole log on every
		// append made opening a 1 GB log take minutes.)
		w.ents = append(w.ents, entries...)
		return nil
	}
	// Overwriting a suffix: the full slice expression keeps entries handed
	// out by Entries intact.
	w.ents = append(w.ents[:offset:offset], entries...)
	return nil
}

// compact drops the entries before index, keeping it as the dummy entry.
func (w *WAL) compact(index uint64) {
	i := index - w.ents[0].GetIndex()
	ents := make([]*raftpb.Entry, 1, uint64(len(w.ents))-i)
	ents[0] = &raftpb.Entry{Index: new(w.ents[i].GetIndex()), Term: new(w.ents[i].GetTerm())}
	w.ents = append(ents, w.ents[i+1:]...)
}

// ApplySnapshot replaces the log with snap, received from the leader, and
// makes that durable before returning. The caller must have made the
// snapshot data durable first (SnapshotStore.Save): after a crash the WAL
// recovers only the metadata. It returns raft.ErrSnapOutOfDate if snap is
// not newer than the current snapshot.
func (w *WAL) ApplySnapshot(snap *raftpb.Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	snap = raftpb.EnsureSnapshot(proto.Clone(raftpb.EnsureSnapshot(snap)).(*raftpb.Snapshot))
	current := w.snapshot.GetMetadata().GetIndex()
	index := snap.GetMetadata().GetIndex()
	// Bootstrap may apply a snapshot holding only a ConfState, at index 0.
	if current != 0 && current >= index {
		return raft.ErrSnapOutOfDate
	}
	buf := appendRecord(w.buf[:0], recSnapshotApplied, marshal(snap.GetMetadata()))
	w.buf = buf
	if err := w.write(buf, true); err != nil {
		return fmt.Errorf("apply snapshot %d: %w", index, err)
	}
	w.snapshot = snap
	w.ents = []*raftpb.Entry{{Index: new(index), Term: new(snap.GetMetadata().GetTerm())}}
	if err := w.removeObsoleteSegments(); err != nil {
		return fmt.Errorf("apply snapshot %d: %w", index, err)
	}
	return nil
}

// CreateSnapshot records that the state up to index i, with conf state cs
// (nil keeps the current one), is captured by data, and returns the
// snapshot. It does not compact the log: call Compact. The caller must have
// made data durable first (SnapshotStore.Save). It returns
// raft.ErrSnapOutOfDate if i is not newer than the current snapshot and
// raft.ErrCompacted if entry i is compacted.
func (w *WAL) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i <= w.snapshot.GetMetadata().GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	offset := w.ents[0].GetIndex()
	if i < offset {
		return nil, raft.ErrCompacted
	}
	if i > w.lastIndex() {
		panic(fmt.Sprintf("storage: snapshot %d is out of bound lastindex(%d)", i, w.lastIndex()))
	}
	meta := proto.Clone(w.snapshot.GetMetadata()).(*raftpb.SnapshotMetadata)
	meta.Index = new(i)
	meta.Term = new(w.ents[i-offset].GetTerm())
	if cs != nil {
		meta.ConfState = proto.Clone(cs).(*raftpb.ConfState)
	}
	buf := appendRecord(w.buf[:0], recSnapshotMeta, marshal(meta))
	w.buf = buf
	if err := w.write(buf, true); err != nil {
		return nil, fmt.Errorf("create snapshot %d: %w", i, err)
	}
	w.snapshot = raftpb.EnsureSnapshot(&raftpb.Snapshot{Metadata: meta, Data: data})
	return proto.Clone(w.snapshot).(*raftpb.Snapshot), nil
}

// SetSnapshotData attaches data to the current snapshot, whose metadata the
// WAL recovered on open but whose data lives in a snapshot file. It fails if
// the current snapshot is not at index.
func (w *WAL) SetSnapshotData(index uint64, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.snapshot.GetMetadata().GetIndex(); got != index {
		return fmt.Errorf("set snapshot data: snapshot is at index %d, not %d", got, index)
	}
	w.snapshot.Data = data
	return nil
}

// Compact discards the entries before compactIndex, durably, and removes
// the segments no longer needed. It returns raft.ErrCompacted if
// compactIndex is already compacted and panics if it is past the last index.
// The application must not compact past its applied index.
func (w *WAL) Compact(compactIndex uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	offset := w.ents[0].GetIndex()
	if compactIndex <= offset {
		return raft.ErrCompacted
	}
	if compactIndex > w.lastIndex() {
		panic(fmt.Sprintf("storage: compact %d is out of bound lastindex(%d)", compactIndex, w.lastIndex()))
	}
	var p [16]byte
	binary.LittleEndian.PutUint64(p[0:], compactIndex)
	binary.LittleEndian.PutUint64(p[8:], w.ents[compactIndex-offset].GetTerm())
	buf := appendRecord(w.buf[:0], recCompact, p[:])
	w.buf = buf
	if err := w.write(buf, true); err != nil {
		return fmt.Errorf("compact %d: %w", compactIndex, err)
	}
	w.compact(compactIndex)
	if err := w.removeObsoleteSegments(); err != nil {
		return fmt.Errorf("compact %d: %w", compactIndex, err)
	}
	return nil
}

// removeObsoleteSegments removes the oldest segments while the next one
// starts at or before the compacted index: replay can then start from that
// next segment's header. The record that compacted is durable already.
func (w *WAL) removeObsoleteSegments() error {
	offset := w.ents[0].GetIndex()
	n := 0
	for n+1 < len(w.segs) && w.segs[n+1].firstIndex-1 <= offset {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, s := range w.segs[:n] {
		if err := w.fsys.Remove(filepath.Join(w.dir, s.name())); err != nil {
			w.failed = err
			return err
		}
	}
	w.segs = append([]segmentInfo(nil), w.segs[n:]...)
	if err := w.fsys.SyncDir(w.dir); err != nil {
		w.failed = err
		return err
	}
	return nil
}

// Segments returns the names of the segment files, oldest first.
func (w *WAL) Segments() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, len(w.segs))
	for i, s := range w.segs {
		names[i] = s.name()
	}
	return names
}

// Close closes the active segment and releases the directory lock. It does
// not sync: unsynced writes are lost only if the machine crashes.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	if w.active != nil {
		errs = append(errs, w.active.Close())
	}
	errs = append(errs, w.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close wal %s: %w", w.dir, err)
	}
	return nil
}

// InitialState implements raft.Storage.
func (w *WAL) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var hs *raftpb.HardState
	if w.hardState != nil {
		hs = proto.Clone(w.hardState).(*raftpb.HardState)
	}
	cs := proto.Clone(raftpb.EnsureConfState(w.snapshot.GetMetadata().GetConfState())).(*raftpb.ConfState)
	return hs, cs, nil
}

// Entries implements raft.Storage.
func (w *WAL) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	offset := w.ents[0].GetIndex()
	if lo <= offset {
		return nil, raft.ErrCompacted
	}
	if hi > w.lastIndex()+1 {
		panic(fmt.Sprintf("storage: entries' hi(%d) is out of bound lastindex(%d)", hi, w.lastIndex()))
	}
	if len(w.ents) == 1 {
		return nil, raft.ErrUnavailable
	}
	ents := limitSize(w.ents[lo-offset:hi-offset], maxSize)
	return ents[:len(ents):len(ents)], nil
}

// limitSize returns the longest prefix of ents whose encoded size does not
// exceed maxSize, and at least one entry if there is any.
func limitSize(ents []*raftpb.Entry, maxSize uint64) []*raftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(proto.Size(ents[0]))
	for limit := 1; limit < len(ents); limit++ {
		size += uint64(proto.Size(ents[limit]))
		if size > maxSize {
			return ents[:limit]
		}
	}
	return ents
}

// Term implements raft.Storage.
func (w *WAL) Term(i uint64) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	offset := w.ents[0].GetIndex()
	if i < offset {
		return 0, raft.ErrCompacted
	}
	if i-offset >= uint64(len(w.ents)) {
		return 0, raft.ErrUnavailable
	}
	return w.ents[i-offset].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (w *WAL) LastIndex() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastIndex(), nil
}

func (w *WAL) lastIndex() uint64 {
	return w.ents[0].GetIndex() + uint64(len(w.ents)) - 1
}

// FirstIndex implements raft.Storage.
func (w *WAL) FirstIndex() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ents[0].GetIndex() + 1, nil
}

// Snapshot implements raft.Storage. After a reopen its Data is nil until
// SetSnapshotData.
func (w *WAL) Snapshot() (*raftpb.Snapshot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return proto.Clone(w.snapshot).(*raftpb.Snapshot), nil
}

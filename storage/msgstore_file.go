package storage

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Record types of message segment and channel meta files. The numbers are
// part of the on-disk format.
const (
	// recMsg is one message: seq uint64 LE, timestampNanos int64 LE, data.
	recMsg byte = 1
	// recChannelMeta is the logical first seq (uint64 LE) and the last
	// timestamp (int64 LE) of a channel, written by TrimBefore.
	recChannelMeta byte = 2
	// recChannelDeleted has the payload of recChannelMeta and marks a
	// channel whose deletion has begun.
	recChannelDeleted byte = 3
)

const (
	// msgHeaderBytes is the seq and timestamp at the start of a recMsg
	// payload.
	msgHeaderBytes = 16
	// msgDataBytesMax bounds the record of one message, 64 MiB, the largest
	// max_payload NATS allows.
	msgDataBytesMax = 64 << 20
	// msgRecordBytesMax bounds a framed recMsg record.
	msgRecordBytesMax = recordHeaderBytes + msgHeaderBytes + msgDataBytesMax
	// msgRecordBytesMin is the size of a framed recMsg with no data.
	msgRecordBytesMin = recordHeaderBytes + msgHeaderBytes
	// indexEntryBytes is the size of one index entry:
	//	0  offset          uint64 LE, of the record in the segment
	//	8  timestampNanos  int64 LE
	//	16 recordBytes     uint32 LE, of the framed record
	//	20 CRC             uint32 LE, CRC32C of bytes 0 to 19
	indexEntryBytes = 24

	// MsgSegmentBytesMaxDefault is the default size at which a message
	// segment is cut.
	MsgSegmentBytesMaxDefault = 64 << 20
	// OpenSegmentsMaxDefault is the default number of sealed segments whose
	// files a file message store keeps open for reading.
	OpenSegmentsMaxDefault = 64

	msgSegSuffix   = ".seg"
	msgIndexSuffix = ".idx"
	channelMeta    = "meta"
)

// FileMsgStoreOptions configures a file message store.
type FileMsgStoreOptions struct {
	// SegmentBytesMax is the size after which the next Put of a channel
	// starts a new segment; 0 means MsgSegmentBytesMaxDefault. A message is
	// never split, so a segment can be larger.
	SegmentBytesMax int64
	// OpenSegmentsMax bounds the sealed segments (all but the last of each
	// channel) whose data and index files stay open for reading, least
	// recently used closed first; 0 means OpenSegmentsMaxDefault. The last
	// segment of every channel stays open.
	OpenSegmentsMax int
}

// fileMsgStore is the MsgStore of OpenFileMsgStore. Once a write fails, the
// state on disk is unknown: the store refuses every later write and must be
// closed and reopened, which recovers what was synced.
type fileMsgStore struct {
	mu       sync.Mutex
	fsys     FS
	dir      string
	opts     FileMsgStoreOptions
	lock     io.Closer
	channels map[string]*fileChannel
	// openSegs lists the sealed segments with open files, most recently
	// used first.
	openSegs *list.List
	failed   error // sticky: the first write error
	// windowBytes is the memory of the read-ahead windows of open
	// segments, at most readAheadTotalMax.
	windowBytes int64
	closed      bool
}

// fileChannel is what a file message store keeps in memory of a channel:
// its bounds and a few numbers per segment, never messages.
type fileChannel struct {
	name        string
	dir         string
	first, last uint64
	lastTs      int64
	// segs are the segments, oldest first, contiguous by seq; the last one
	// is active (open, appended to) until a trim removes it.
	segs  []*msgSegment
	dirty bool // the active segment has writes Sync has not synced
}

// msgSegment is a segment file and its index file.
type msgSegment struct {
	firstSeq, lastSeq uint64 // lastSeq is firstSeq-1 while empty
	firstTs, lastTs   int64
	dataBytes         int64 // size of the segment file, pending bytes included
	data, index       File  // nil while closed
	lru               *list.Element
	// dataWin and indexWin hold what was last read ahead of each file.
	dataWin, indexWin readWindow
	// pendData and pendIndex are appended records and index entries not
	// yet written (the active segment only): they end at dataBytes and at
	// the index entry of lastSeq. Sync, a read of the segment, a cut or
	// a full buffer writes them, so a Put costs no system call.
	pendData, pendIndex []byte
}

// readWindow is bytes of a file read ahead from start.
type readWindow struct {
	start int64
	buf   []byte
}

const (
	// readAheadBytes is how much a read of a segment or index file reads
	// at once, so that a subscriber replaying a channel costs a system
	// call per window, not two per message.
	readAheadBytes = 64 << 10
	// readAheadTotalMax bounds the memory of all windows; past it, reads
	// read only what they need.
	readAheadTotalMax = 32 << 20
)

// readAhead returns n bytes of f at off, from the window w when it holds
// them, else from a new window read there. The bytes alias the window: a
// caller that keeps them copies them. A file shorter than off+n gives
// io.EOF.
func (s *fileMsgStore) readAhead(w *readWindow, f File, off int64, n int) ([]byte, error) {
	if off >= w.start && off+int64(n) <= w.start+int64(len(w.buf)) {
		return w.buf[off-w.start : off-w.start+int64(n)], nil
	}
	size := n
	if cap(w.buf) >= readAheadBytes || s.windowBytes+readAheadBytes <= readAheadTotalMax {
		if cap(w.buf) < readAheadBytes {
			s.windowBytes += readAheadBytes - int64(cap(w.buf))
			w.buf = make([]byte, readAheadBytes)
		}
		size = max(n, readAheadBytes)
	}
	if cap(w.buf) < size {
		w.buf = make([]byte, size)
	}
	buf := w.buf[:size]
	got, err := f.ReadAt(buf, off)
	if got < n {
		w.start, w.buf = 0, w.buf[:0]
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.start, w.buf = off, buf[:got]
	return w.buf[:n], nil
}

// readSegment returns n bytes at off of a segment or index file whose
// buffered, unwritten bytes pend end at size: from pend when they are
// there (what a live subscriber reads right after a Put), else from the
// file through w.
func (s *fileMsgStore) readSegment(w *readWindow, f File, pend []byte, size, off int64, n int) ([]byte, error) {
	if start := size - int64(len(pend)); len(pend) > 0 && off >= start {
		if off+int64(n) > size {
			return nil, io.EOF
		}
		return pend[off-start : off-start+int64(n)], nil
	}
	return s.readAhead(w, f, off, n)
}

// dropWindows frees g's read-ahead windows.
func (s *fileMsgStore) dropWindows(g *msgSegment) {
	for _, w := range []*readWindow{&g.dataWin, &g.indexWin} {
		if cap(w.buf) >= readAheadBytes {
			s.windowBytes -= int64(cap(w.buf))
		}
		*w = readWindow{}
	}
}

// msgWriteBufferBytes is how much a segment buffers before writing.
const msgWriteBufferBytes = 256 << 10

// flush writes what g buffered. A failure is sticky, like any write error.
func (s *fileMsgStore) flush(g *msgSegment) error {
	if len(g.pendData) == 0 && len(g.pendIndex) == 0 {
		return nil
	}
	if _, err := g.data.WriteAt(g.pendData, g.dataBytes-int64(len(g.pendData))); err != nil {
		s.failed = err
		return err
	}
	if _, err := g.index.WriteAt(g.pendIndex, int64(g.count())*indexEntryBytes-int64(len(g.pendIndex))); err != nil {
		s.failed = err
		return err
	}
	g.pendData, g.pendIndex = g.pendData[:0], g.pendIndex[:0]
	return nil
}

func (g *msgSegment) count() uint64 { return g.lastSeq + 1 - g.firstSeq }

func segName(firstSeq uint64) string   { return fmt.Sprintf("%016x%s", firstSeq, msgSegSuffix) }
func indexName(firstSeq uint64) string { return fmt.Sprintf("%016x%s", firstSeq, msgIndexSuffix) }

// parseSegFileName parses a segment or index file name.
func parseSegFileName(name string) (firstSeq uint64, suffix string, ok bool) {
	for _, suffix := range []string{msgSegSuffix, msgIndexSuffix} {
		hex, found := strings.CutSuffix(name, suffix)
		if !found || len(hex) != 16 {
			continue
		}
		if _, err := fmt.Sscanf(hex, "%016x", &firstSeq); err != nil || segName(firstSeq) != hex+msgSegSuffix || firstSeq == 0 {
			return 0, "", false
		}
		return firstSeq, suffix, true
	}
	return 0, "", false
}

// OpenFileMsgStore opens the message store in dir, creating it if needed.
// It recovers every channel: the tail of each channel's last segment is
// checked, a torn tail truncated and the index completed; damage anywhere a
// torn write cannot explain returns an error wrapping ErrCorrupt.
func OpenFileMsgStore(fsys FS, dir string, opts FileMsgStoreOptions) (MsgStore, error) {
	if opts.SegmentBytesMax <= 0 {
		opts.SegmentBytesMax = MsgSegmentBytesMaxDefault
	}
	if opts.OpenSegmentsMax <= 0 {
		opts.OpenSegmentsMax = OpenSegmentsMaxDefault
	}
	if err := MkdirAllSync(fsys, dir); err != nil {
		return nil, fmt.Errorf("open message store %s: %w", dir, err)
	}
	lock, err := fsys.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("open message store %s: %w", dir, err)
	}
	s := &fileMsgStore{
		fsys:     fsys,
		dir:      dir,
		opts:     opts,
		lock:     lock,
		channels: map[string]*fileChannel{},
		openSegs: list.New(),
	}
	if err := s.open(); err != nil {
		s.closeFiles()
		lock.Close()
		return nil, fmt.Errorf("open message store %s: %w", dir, err)
	}
	return s, nil
}

// open recovers every channel directory.
func (s *fileMsgStore) open() error {
	names, err := s.fsys.List(s.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, channelDirPrefix) {
			continue
		}
		channel, ok := decodeChannel(name)
		if !ok {
			return fmt.Errorf("%w: %s: not a channel directory name", ErrCorrupt, name)
		}
		ch := &fileChannel{name: channel, dir: filepath.Join(s.dir, name)}
		keep, err := s.openChannel(ch)
		if err != nil {
			for _, g := range ch.segs {
				s.closeSegment(g)
			}
			return fmt.Errorf("channel %s: %w", channel, err)
		}
		if keep {
			s.channels[channel] = ch
		}
	}
	return nil
}

// openChannel recovers the channel ch names. It returns false if the
// channel holds nothing durable or its deletion had begun: its directory is
// then removed.
func (s *fileMsgStore) openChannel(ch *fileChannel) (keep bool, err error) {
	names, err := s.fsys.List(ch.dir)
	if err != nil {
		return false, err
	}
	type files struct{ seg, index bool }
	found := map[uint64]*files{}
	var firsts []uint64
	hasMeta := false
	for _, name := range names {
		if name == channelMeta {
			hasMeta = true
			continue
		}
		first, suffix, ok := parseSegFileName(name)
		if !ok {
			continue
		}
		f := found[first]
		if f == nil {
			f = &files{}
			found[first] = f
			firsts = append(firsts, first)
		}
		if suffix == msgSegSuffix {
			f.seg = true
		} else {
			f.index = true
		}
	}
	slices.Sort(firsts)

	var metaFirst uint64
	if hasMeta {
		typ, first, lastTs, err := s.readMeta(ch)
		if err != nil {
			return false, err
		}
		if typ == recChannelDeleted {
			return false, s.removeChannelDir(ch)
		}
		metaFirst, ch.lastTs = first, lastTs
	}

	// Every segment but the last was synced, index included, before the
	// next one was created.
	for i, first := range firsts {
		if i == len(firsts)-1 {
			break
		}
		if !found[first].seg || !found[first].index {
			return false, fmt.Errorf("%w: %s: segment %s lacks its segment or index file", ErrCorrupt, ch.dir, segName(first))
		}
		g, err := s.openSealed(ch, first)
		if err != nil {
			return false, err
		}
		if n := len(ch.segs); n > 0 && ch.segs[n-1].lastSeq+1 != g.firstSeq {
			return false, fmt.Errorf("%w: %s: segment %s follows seq %d: a segment is missing", ErrCorrupt, ch.dir, segName(first), ch.segs[n-1].lastSeq)
		}
		ch.segs = append(ch.segs, g)
	}
	if len(firsts) > 0 {
		last := firsts[len(firsts)-1]
		if err := s.recoverLast(ch, last, found[last].seg, found[last].index); err != nil {
			return false, err
		}
	}
	// Finish a trim that stopped before removing every segment below the
	// logical first.
	if hasMeta {
		if err := s.removeSegmentsBelow(ch, metaFirst); err != nil {
			return false, err
		}
	}
	switch {
	case len(ch.segs) == 0 && !hasMeta:
		// The channel was created, but none of its messages was synced.
		return false, s.removeChannelDir(ch)
	case len(ch.segs) == 0:
		ch.first, ch.last = metaFirst, metaFirst-1
	case hasMeta:
		if metaFirst < ch.segs[0].firstSeq {
			return false, fmt.Errorf("%w: %s: first seq is %d but the first segment starts at %d", ErrCorrupt, ch.dir, metaFirst, ch.segs[0].firstSeq)
		}
		ch.first = metaFirst
		ch.last = max(ch.segs[len(ch.segs)-1].lastSeq, metaFirst-1)
	default:
		ch.first, ch.last = ch.segs[0].firstSeq, ch.segs[len(ch.segs)-1].lastSeq
	}
	if n := len(ch.segs); n > 0 {
		ch.lastTs = max(ch.lastTs, ch.segs[n-1].lastTs)
	}
	return true, nil
}

// readMeta reads the meta file of a channel: one record.
func (s *fileMsgStore) readMeta(ch *fileChannel) (typ byte, first uint64, lastTs int64, err error) {
	name := filepath.Join(ch.dir, channelMeta)
	data, err := ReadFile(s.fsys, name)
	if err != nil {
		return 0, 0, 0, err
	}
	rec, ok := recordAt(data, 0)
	if !ok || recordHeaderBytes+int64(len(rec.payload)) != int64(len(data)) || len(rec.payload) != 16 ||
		(rec.typ != recChannelMeta && rec.typ != recChannelDeleted) {
		return 0, 0, 0, fmt.Errorf("%w: %s: not a channel meta record", ErrCorrupt, name)
	}
	first = binary.LittleEndian.Uint64(rec.payload[0:])
	if first == 0 {
		return 0, 0, 0, fmt.Errorf("%w: %s: first seq 0", ErrCorrupt, name)
	}
	return rec.typ, first, int64(binary.LittleEndian.Uint64(rec.payload[8:])), nil
}

// writeMeta durably replaces the meta file of a channel.
func (s *fileMsgStore) writeMeta(ch *fileChannel, typ byte, first uint64) error {
	var p [16]byte
	binary.LittleEndian.PutUint64(p[0:], first)
	binary.LittleEndian.PutUint64(p[8:], uint64(ch.lastTs))
	return WriteFileSync(s.fsys, filepath.Join(ch.dir, channelMeta), appendRecord(nil, typ, p[:]))
}

// openSealed reads the bounds of a sealed segment from its index: its entry
// count, first and last entries. It leaves the files closed.
func (s *fileMsgStore) openSealed(ch *fileChannel, first uint64) (*msgSegment, error) {
	g := &msgSegment{firstSeq: first}
	if err := s.openFiles(ch, g, false); err != nil {
		return nil, err
	}
	defer s.closeSegment(g)
	idxName := filepath.Join(ch.dir, indexName(first))
	size, err := g.index.Size()
	if err != nil {
		return nil, err
	}
	if size == 0 || size%indexEntryBytes != 0 {
		return nil, fmt.Errorf("%w: %s: index of %d bytes in a sealed segment", ErrCorrupt, idxName, size)
	}
	if g.dataBytes, err = g.data.Size(); err != nil {
		return nil, err
	}
	g.lastSeq = first + uint64(size/indexEntryBytes) - 1
	e0, err := s.readEntry(ch, g, first)
	if err != nil {
		return nil, err
	}
	en, err := s.readEntry(ch, g, g.lastSeq)
	if err != nil {
		return nil, err
	}
	if e0.offBytes != 0 || en.ts < e0.ts {
		return nil, fmt.Errorf("%w: %s: first entry at offset %d, timestamps %d to %d", ErrCorrupt, idxName, e0.offBytes, e0.ts, en.ts)
	}
	g.firstTs, g.lastTs = e0.ts, en.ts
	return g, nil
}

// recoverLast recovers the last segment of a channel and makes it active.
// It trusts the last index entry whose record is intact, scans the segment
// from the end of that record, truncates a torn tail and rebuilds the index
// entries of the records it finds. An empty last segment is removed and the
// one before recovered instead.
func (s *fileMsgStore) recoverLast(ch *fileChannel, first uint64, hasSeg, hasIndex bool) error {
	segPath, idxPath := filepath.Join(ch.dir, segName(first)), filepath.Join(ch.dir, indexName(first))
	if !hasSeg {
		// Created last and its directory entry never became durable.
		if err := s.fsys.Remove(idxPath); err != nil {
			return err
		}
		return s.popEmptyLast(ch)
	}
	if !hasIndex {
		f, err := s.fsys.Create(idxPath)
		if err != nil {
			return err
		}
		f.Close()
	}
	g := &msgSegment{firstSeq: first, lastSeq: first - 1}
	if err := s.openFiles(ch, g, true); err != nil {
		return err
	}
	if n := len(ch.segs); n > 0 && ch.segs[n-1].lastSeq+1 != first {
		s.closeSegment(g)
		return fmt.Errorf("%w: %s: segment %s follows seq %d: a segment is missing", ErrCorrupt, ch.dir, segName(first), ch.segs[n-1].lastSeq)
	}
	ch.segs = append(ch.segs, g)
	dataBytes, err := g.data.Size()
	if err != nil {
		return err
	}
	g.dataBytes = dataBytes
	idxBytes, err := g.index.Size()
	if err != nil {
		return err
	}

	// Walk back to the last index entry whose record is intact.
	var endBytes int64
	kept := uint64(0)
	for k := uint64(idxBytes / indexEntryBytes); k > 0; k-- {
		g.lastSeq = first + k - 1
		seq := first + k - 1
		e, err := s.readEntry(ch, g, seq)
		if errors.Is(err, ErrCorrupt) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := s.readRecord(ch, g, seq, e); errors.Is(err, ErrCorrupt) {
			continue
		} else if err != nil {
			return err
		}
		kept, endBytes, g.lastTs = k, e.offBytes+e.recordBytes, e.ts
		break
	}
	g.lastSeq = first + kept - 1
	if kept > 0 {
		e0, err := s.readEntry(ch, g, first)
		if err != nil {
			return err
		}
		g.firstTs = e0.ts
	}

	// Scan the tail.
	tail := make([]byte, dataBytes-endBytes)
	if n, err := g.data.ReadAt(tail, endBytes); err != nil && !(errors.Is(err, io.EOF) && n == len(tail)) {
		return fmt.Errorf("read %s: %w", segPath, err)
	}
	recs, tailEnd, err := scanRecords(fmt.Sprintf("%s (tail from offset %d)", segPath, endBytes), tail)
	if err != nil {
		return err
	}
	var entries []byte
	for _, rec := range recs {
		off := endBytes + rec.offBytes
		seq, ts, ok := decodeMsg(rec)
		if !ok || seq != first+kept || (kept > 0 && ts < g.lastTs) {
			return fmt.Errorf("%w: %s: record at offset %d: type %d, seq %d, timestamp %d where seq %d at or after %d belongs", ErrCorrupt, segPath, off, rec.typ, seq, ts, first+kept, g.lastTs)
		}
		entries = appendIndexEntry(entries, off, ts, recordHeaderBytes+int64(len(rec.payload)))
		if kept == 0 {
			g.firstTs = ts
		}
		kept++
		g.lastSeq, g.lastTs = seq, ts
	}
	changed := false
	if len(entries) > 0 {
		if _, err := g.index.WriteAt(entries, int64(kept-uint64(len(recs)))*indexEntryBytes); err != nil {
			return err
		}
		changed = true
	}
	if idxBytes != int64(kept)*indexEntryBytes {
		if err := g.index.Truncate(int64(kept) * indexEntryBytes); err != nil {
			return err
		}
		changed = true
	}
	if endBytes+tailEnd < dataBytes {
		if err := g.data.Truncate(endBytes + tailEnd); err != nil {
			return fmt.Errorf("truncate torn tail of %s at offset %d: %w", segPath, endBytes+tailEnd, err)
		}
		changed = true
	}
	g.dataBytes = endBytes + tailEnd
	if changed {
		if err := g.data.Sync(); err != nil {
			return err
		}
		if err := g.index.Sync(); err != nil {
			return err
		}
	}
	if kept == 0 {
		// Created, but none of its records was synced.
		ch.segs = ch.segs[:len(ch.segs)-1]
		s.closeSegment(g)
		if err := s.fsys.Remove(segPath); err != nil {
			return err
		}
		if err := s.fsys.Remove(idxPath); err != nil {
			return err
		}
		return s.popEmptyLast(ch)
	}
	return nil
}

// popEmptyLast is called after the last segment of ch was removed for being
// empty: it makes the removal durable and recovers the segment before, if
// any, as the last one.
func (s *fileMsgStore) popEmptyLast(ch *fileChannel) error {
	if err := s.fsys.SyncDir(ch.dir); err != nil {
		return err
	}
	n := len(ch.segs)
	if n == 0 {
		return nil
	}
	prev := ch.segs[n-1]
	ch.segs = ch.segs[:n-1]
	s.closeSegment(prev)
	return s.recoverLast(ch, prev.firstSeq, true, true)
}

// removeSegmentsBelow removes the segments whose messages are all below
// seq, and syncs the directory if it removed any.
func (s *fileMsgStore) removeSegmentsBelow(ch *fileChannel, seq uint64) error {
	n := 0
	for n < len(ch.segs) && ch.segs[n].lastSeq < seq {
		g := ch.segs[n]
		g.pendData, g.pendIndex = nil, nil
		s.closeSegment(g)
		if err := s.fsys.Remove(filepath.Join(ch.dir, segName(g.firstSeq))); err != nil {
			return err
		}
		if err := s.fsys.Remove(filepath.Join(ch.dir, indexName(g.firstSeq))); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if n == len(ch.segs) {
		ch.dirty = false
	}
	ch.segs = slices.Delete(ch.segs, 0, n)
	return s.fsys.SyncDir(ch.dir)
}

// removeChannelDir removes the directory of a channel so that a crash
// midway leaves either the meta file (a deletion marker) or no segment: it
// removes every file but meta, syncs, then removes meta and the directory.
func (s *fileMsgStore) removeChannelDir(ch *fileChannel) error {
	for _, g := range ch.segs {
		g.pendData, g.pendIndex = nil, nil
		s.closeSegment(g)
	}
	names, err := s.fsys.List(ch.dir)
	if err != nil {
		return err
	}
	hasMeta := false
	for _, name := range names {
		if name == channelMeta {
			hasMeta = true
			continue
		}
		if err := s.fsys.Remove(filepath.Join(ch.dir, name)); err != nil {
			return err
		}
	}
	if hasMeta {
		if err := s.fsys.SyncDir(ch.dir); err != nil {
			return err
		}
		if err := s.fsys.Remove(filepath.Join(ch.dir, channelMeta)); err != nil {
			return err
		}
	}
	if err := s.fsys.Remove(ch.dir); err != nil {
		return err
	}
	return s.fsys.SyncDir(s.dir)
}

// openFiles opens the files of segment g.
func (s *fileMsgStore) openFiles(ch *fileChannel, g *msgSegment, active bool) error {
	data, err := s.fsys.Open(filepath.Join(ch.dir, segName(g.firstSeq)))
	if err != nil {
		return err
	}
	index, err := s.fsys.Open(filepath.Join(ch.dir, indexName(g.firstSeq)))
	if err != nil {
		data.Close()
		return err
	}
	g.data, g.index = data, index
	if !active {
		g.lru = s.openSegs.PushFront(g)
		for s.openSegs.Len() > s.opts.OpenSegmentsMax {
			s.closeSegment(s.openSegs.Back().Value.(*msgSegment))
		}
	}
	return nil
}

// segmentFiles makes sure the files of g are open for reading.
func (s *fileMsgStore) segmentFiles(ch *fileChannel, g *msgSegment) error {
	if g.data == nil {
		return s.openFiles(ch, g, false)
	}
	if g.lru != nil {
		s.openSegs.MoveToFront(g.lru)
	}
	return nil
}

// closeSegment closes the files of g, if open.
func (s *fileMsgStore) closeSegment(g *msgSegment) {
	s.dropWindows(g)
	if g.lru != nil {
		s.openSegs.Remove(g.lru)
		g.lru = nil
	}
	if g.data != nil {
		g.data.Close()
		g.index.Close()
		g.data, g.index = nil, nil
	}
}

// closeFiles closes every open file.
func (s *fileMsgStore) closeFiles() {
	for _, ch := range s.channels {
		for _, g := range ch.segs {
			if g.data != nil && s.failed == nil {
				s.flush(g) // a failure leaves the tail unsynced, as a crash would
			}
			s.closeSegment(g)
		}
	}
	for s.openSegs.Len() > 0 {
		s.closeSegment(s.openSegs.Back().Value.(*msgSegment))
	}
}

// indexEntry is a decoded index entry.
type indexEntry struct {
	offBytes    int64
	ts          int64
	recordBytes int64
}

func appendIndexEntry(buf []byte, offBytes, ts, recordBytes int64) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(offBytes))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(ts))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(recordBytes))
	return binary.LittleEndian.AppendUint32(buf, crc32c(buf[start:]))
}

// readEntry reads and checks the index entry of seq in g, whose files are
// open.
func (s *fileMsgStore) readEntry(ch *fileChannel, g *msgSegment, seq uint64) (indexEntry, error) {
	off := int64(seq-g.firstSeq) * indexEntryBytes
	b, err := s.readSegment(&g.indexWin, g.index, g.pendIndex, int64(g.count())*indexEntryBytes, off, indexEntryBytes)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return indexEntry{}, fmt.Errorf("%w: %s: index entry of seq %d at offset %d is missing", ErrCorrupt, filepath.Join(ch.dir, indexName(g.firstSeq)), seq, off)
		}
		return indexEntry{}, fmt.Errorf("read %s: %w", filepath.Join(ch.dir, indexName(g.firstSeq)), err)
	}
	e := indexEntry{
		offBytes:    int64(binary.LittleEndian.Uint64(b[0:])),
		ts:          int64(binary.LittleEndian.Uint64(b[8:])),
		recordBytes: int64(binary.LittleEndian.Uint32(b[16:])),
	}
	if crc32c(b[:20]) != binary.LittleEndian.Uint32(b[20:]) || e.offBytes < 0 ||
		e.recordBytes < msgRecordBytesMin || e.recordBytes > msgRecordBytesMax || e.offBytes > g.dataBytes-e.recordBytes {
		return indexEntry{}, fmt.Errorf("%w: %s: bad index entry of seq %d at offset %d", ErrCorrupt, filepath.Join(ch.dir, indexName(g.firstSeq)), seq, off)
	}
	return e, nil
}

// readRecord reads and checks the record of seq, at e, and returns its
// data.
func (s *fileMsgStore) readRecord(ch *fileChannel, g *msgSegment, seq uint64, e indexEntry) ([]byte, error) {
	buf, err := s.readSegment(&g.dataWin, g.data, g.pendData, g.dataBytes, e.offBytes, int(e.recordBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(ch.dir, segName(g.firstSeq)), err)
	}
	rec, ok := recordAt(buf, 0)
	if ok && recordHeaderBytes+int64(len(rec.payload)) == e.recordBytes {
		if got, _, ok := decodeMsg(rec); ok && got == seq {
			return bytes.Clone(rec.payload[msgHeaderBytes:]), nil
		}
	}
	return nil, fmt.Errorf("%w: %s: bad record of seq %d at offset %d", ErrCorrupt, filepath.Join(ch.dir, segName(g.firstSeq)), seq, e.offBytes)
}

// decodeMsg returns the seq and timestamp of a recMsg record.
func decodeMsg(rec record) (seq uint64, ts int64, ok bool) {
	if rec.typ != recMsg || len(rec.payload) < msgHeaderBytes {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(rec.payload[0:]), int64(binary.LittleEndian.Uint64(rec.payload[8:])), true
}

// segmentOf returns the segment holding seq, which must be in first..last.
func (ch *fileChannel) segmentOf(seq uint64) *msgSegment {
	i := sort.Search(len(ch.segs), func(i int) bool { return ch.segs[i].lastSeq >= seq })
	if i == len(ch.segs) || ch.segs[i].firstSeq > seq {
		panic(fmt.Sprintf("storage: channel %s has no segment for seq %d in [%d,%d]", ch.name, seq, ch.first, ch.last))
	}
	return ch.segs[i]
}

// get reads the record of seq, which must be in first..last.
func (s *fileMsgStore) get(ch *fileChannel, seq uint64) ([]byte, error) {
	g := ch.segmentOf(seq)
	if err := s.segmentFiles(ch, g); err != nil {
		return nil, err
	}
	e, err := s.readEntry(ch, g, seq)
	if err != nil {
		return nil, err
	}
	return s.readRecord(ch, g, seq, e)
}

// Put implements MsgStore.
func (s *fileMsgStore) Put(channel string, seq uint64, timestampNanos int64, record []byte) error {
	if err := checkPut(channel, seq, record); err != nil {
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	ch := s.channels[channel]
	var first, last uint64
	if ch != nil {
		first, last = ch.first, ch.last
	}
	existing, err := checkSeq(first, last, seq)
	if errors.Is(err, errPutNoop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	if existing {
		got, err := s.get(ch, seq)
		if err != nil {
			return fmt.Errorf("put %s/%d: %w", channel, seq, err)
		}
		if !bytes.Equal(got, record) {
			return fmt.Errorf("put %s/%d: %w", channel, seq, ErrConflict)
		}
		return nil
	}
	if ch == nil {
		ch = &fileChannel{name: channel, dir: filepath.Join(s.dir, encodeChannel(channel))}
	}
	if err := s.appendMsg(ch, seq, timestampNanos, record); err != nil {
		s.failed = err
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	s.channels[channel] = ch
	return nil
}

// writable returns an error if the store cannot be written.
func (s *fileMsgStore) writable() error {
	if s.closed {
		return errMsgStoreClosed
	}
	if s.failed != nil {
		return fmt.Errorf("message store failed earlier: %w", s.failed)
	}
	return nil
}

// appendMsg writes the record of seq, which comes next, to the active segment
// of ch, cutting a new one first if needed.
func (s *fileMsgStore) appendMsg(ch *fileChannel, seq uint64, ts int64, data []byte) error {
	n := len(ch.segs)
	if n == 0 || (ch.segs[n-1].count() > 0 && ch.segs[n-1].dataBytes >= s.opts.SegmentBytesMax) {
		if err := s.cut(ch, seq); err != nil {
			return err
		}
	}
	g := ch.segs[len(ch.segs)-1]
	if g.lastSeq+1 != seq {
		panic(fmt.Sprintf("storage: channel %s appends seq %d to a segment ending at %d", ch.name, seq, g.lastSeq))
	}
	ts = max(ts, ch.lastTs)
	var header [recordHeaderBytes]byte
	start := len(g.pendData)
	g.pendData = append(g.pendData, header[:]...)
	g.pendData = binary.LittleEndian.AppendUint64(g.pendData, seq)
	g.pendData = binary.LittleEndian.AppendUint64(g.pendData, uint64(ts))
	g.pendData = append(g.pendData, data...)
	frameRecord(g.pendData[start:], recMsg)
	recBytes := int64(len(g.pendData) - start)
	g.pendIndex = appendIndexEntry(g.pendIndex, g.dataBytes, ts, recBytes)
	if g.count() == 0 {
		g.firstTs = ts
	}
	g.lastSeq, g.lastTs = seq, ts
	g.dataBytes += recBytes
	if ch.first == 0 {
		ch.first = seq
	}
	ch.last, ch.lastTs = seq, ts
	ch.dirty = true
	if len(g.pendData) >= msgWriteBufferBytes {
		return s.flush(g)
	}
	return nil
}

// cut syncs and closes the active segment of ch, if any, and creates the
// next one, starting at firstSeq, durably (name included). The first cut of
// a channel creates its directory.
func (s *fileMsgStore) cut(ch *fileChannel, firstSeq uint64) error {
	newDir := ch.first == 0 && len(ch.segs) == 0
	if n := len(ch.segs); n > 0 {
		g := ch.segs[n-1]
		if err := s.flush(g); err != nil {
			return err
		}
		// A later segment must never survive a crash that a hole in this
		// one does not.
		if err := g.data.Sync(); err != nil {
			return err
		}
		if err := g.index.Sync(); err != nil {
			return err
		}
		s.closeSegment(g)
		ch.dirty = false
	}
	if newDir {
		if err := s.fsys.MkdirAll(ch.dir); err != nil {
			return err
		}
	}
	for _, name := range []string{segName(firstSeq), indexName(firstSeq)} {
		f, err := s.fsys.Create(filepath.Join(ch.dir, name))
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := s.fsys.SyncDir(ch.dir); err != nil {
		return err
	}
	if newDir {
		if err := s.fsys.SyncDir(s.dir); err != nil {
			return err
		}
	}
	g := &msgSegment{firstSeq: firstSeq, lastSeq: firstSeq - 1}
	if err := s.openFiles(ch, g, true); err != nil {
		return err
	}
	ch.segs = append(ch.segs, g)
	return nil
}

// Get implements MsgStore.
func (s *fileMsgStore) Get(channel string, seq uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.holding("get", channel, seq)
	if err != nil {
		return nil, err
	}
	data, err := s.get(ch, seq)
	if err != nil {
		return nil, fmt.Errorf("get %s/%d: %w", channel, seq, err)
	}
	return data, nil
}

// DropSegmentsBefore implements MsgStore: it removes the sealed segments
// wholly below seq, oldest first, syncing the directory after each so that
// a crash never leaves a hole, and writes no meta file.
func (s *fileMsgStore) DropSegmentsBefore(channel string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("drop segments of %s before %d: %w", channel, seq, err)
	}
	ch := s.channels[channel]
	if ch == nil {
		return nil
	}
	// The last (active) segment always stays.
	for len(ch.segs) > 1 && ch.segs[0].lastSeq < seq {
		if err := s.removeSegmentsBelow(ch, ch.segs[0].lastSeq+1); err != nil {
			s.failed = err
			return fmt.Errorf("drop segments of %s before %d: %w", channel, seq, err)
		}
		ch.first = max(ch.first, ch.segs[0].firstSeq)
	}
	return nil
}

// holding returns the channel holding seq, or the error of op: the store
// is closed, or ErrNotFound. The caller holds s.mu.
func (s *fileMsgStore) holding(op, channel string, seq uint64) (*fileChannel, error) {
	if s.closed {
		return nil, fmt.Errorf("%s %s/%d: %w", op, channel, seq, errMsgStoreClosed)
	}
	ch := s.channels[channel]
	if ch == nil || seq < ch.first || seq > ch.last {
		return nil, fmt.Errorf("%s %s/%d: %w", op, channel, seq, ErrNotFound)
	}
	return ch, nil
}

// Stat implements MsgStore: it reads the index entry only.
func (s *fileMsgStore) Stat(channel string, seq uint64) (int64, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.holding("stat", channel, seq)
	if err != nil {
		return 0, 0, err
	}
	g := ch.segmentOf(seq)
	if err := s.segmentFiles(ch, g); err != nil {
		return 0, 0, fmt.Errorf("stat %s/%d: %w", channel, seq, err)
	}
	e, err := s.readEntry(ch, g, seq)
	if err != nil {
		return 0, 0, fmt.Errorf("stat %s/%d: %w", channel, seq, err)
	}
	return e.ts, int(e.recordBytes - msgRecordBytesMin), nil
}

// FirstLast implements MsgStore.
func (s *fileMsgStore) FirstLast(channel string) (first, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.channels[channel]; ch != nil {
		return ch.first, ch.last
	}
	return 0, 0
}

// SeqAtOrAfter implements MsgStore. It finds the segment by its last
// timestamp in memory, then binary searches its index. SeqAtOrAfter cannot
// return an error: if an index entry cannot be read, it returns the lowest
// seq the search had not ruled out, so that a subscriber starting there
// misses nothing, and the Get of a damaged message reports the damage.
func (s *fileMsgStore) SeqAtOrAfter(channel string, timestampNanos int64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	if s.closed || ch == nil || ch.first > ch.last {
		return 0, false
	}
	i := sort.Search(len(ch.segs), func(i int) bool { return ch.segs[i].lastTs >= timestampNanos })
	if i == len(ch.segs) {
		return 0, false
	}
	g := ch.segs[i]
	lo, hi := max(ch.first, g.firstSeq), g.lastSeq // the answer is in lo..hi
	if g.firstTs >= timestampNanos {
		return lo, true
	}
	if err := s.segmentFiles(ch, g); err != nil {
		return lo, true
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := s.readEntry(ch, g, mid)
		if err != nil {
			return lo, true
		}
		if e.ts >= timestampNanos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true
}

// TrimBefore implements MsgStore: it records the new first seq in the meta
// file of the channel, then removes the segments wholly below it.
func (s *fileMsgStore) TrimBefore(channel string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("trim %s before %d: %w", channel, seq, err)
	}
	ch := s.channels[channel]
	if ch == nil || seq <= ch.first {
		return nil
	}
	if err := s.writeMeta(ch, recChannelMeta, seq); err != nil {
		s.failed = err
		return fmt.Errorf("trim %s before %d: %w", channel, seq, err)
	}
	ch.first = seq
	ch.last = max(ch.last, seq-1)
	if err := s.removeSegmentsBelow(ch, seq); err != nil {
		s.failed = err
		return fmt.Errorf("trim %s before %d: %w", channel, seq, err)
	}
	return nil
}

// DeleteChannel implements MsgStore: it marks the channel deleted in its
// meta file, then removes its directory.
func (s *fileMsgStore) DeleteChannel(channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("delete channel %s: %w", channel, err)
	}
	ch := s.channels[channel]
	if ch == nil {
		return nil
	}
	delete(s.channels, channel)
	if err := s.writeMeta(ch, recChannelDeleted, max(ch.first, 1)); err != nil {
		s.failed = err
		return fmt.Errorf("delete channel %s: %w", channel, err)
	}
	if err := s.removeChannelDir(ch); err != nil {
		s.failed = err
		return fmt.Errorf("delete channel %s: %w", channel, err)
	}
	return nil
}

// Channels implements MsgStore.
func (s *fileMsgStore) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.channels))
	for name := range s.channels {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Sync implements MsgStore: it syncs the segment, then the index file, of
// every channel written since the last Sync.
func (s *fileMsgStore) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	var dirty []string
	for name, ch := range s.channels {
		if ch.dirty {
			dirty = append(dirty, name)
		}
	}
	slices.Sort(dirty)
	for _, name := range dirty {
		ch := s.channels[name]
		g := ch.segs[len(ch.segs)-1]
		if err := s.flush(g); err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
		if err := g.data.Sync(); err != nil {
			s.failed = err
			return fmt.Errorf("sync %s: %w", name, err)
		}
		if err := g.index.Sync(); err != nil {
			s.failed = err
			return fmt.Errorf("sync %s: %w", name, err)
		}
		ch.dirty = false
	}
	return nil
}

// Close implements MsgStore.
func (s *fileMsgStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close: %w", errMsgStoreClosed)
	}
	s.closed = true
	s.closeFiles()
	return s.lock.Close()
}

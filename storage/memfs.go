package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// MemFS is a strict in-memory FS for tests and the simulator. Every file keeps
// the contents made durable by its last Sync and the list of writes since.
// Every directory entry (file or subdirectory) is durable only once SyncDir of
// its parent saw it. Crash forgets everything that is not durable.
//
// MemFS is deterministic: nothing it returns depends on map order, and its
// only randomness is the *rand.Rand given in MemFSOptions.
type MemFS struct {
	mu   sync.Mutex
	rng  *rand.Rand
	gen  uint64 // bumped by Crash: handles of an older generation are dead
	live map[string]*memNode
	// durable is the namespace a crash falls back to.
	durable map[string]*memNode
	locked  map[string]bool
	faults  []memFault
}

// MemFSOptions configures a MemFS.
type MemFSOptions struct {
	// Rand, when set, makes Crash keep a random prefix of each file's
	// unsynced writes, with the first write not kept torn at a random byte
	// (a prefix of it survives). When nil, Crash drops every unsynced write.
	Rand *rand.Rand
}

// Op is a kind of file system operation, for fault injection.
type Op uint8

// The operations a fault can target.
const (
	// OpRead is File.ReadAt, List and Open.
	OpRead Op = 1 << iota
	// OpWrite is File.Write, File.WriteAt, File.Truncate, File.Allocate, Create, Rename,
	// Remove, RemoveAll and MkdirAll.
	OpWrite
	// OpSync is File.Sync and SyncDir.
	OpSync
	// OpAllocate is File.Allocate alone (OpWrite covers it too): a disk
	// with no space left to reserve, whose writes still fit.
	OpAllocate
)

// ErrInjected is the error a fault returns when none was given.
var ErrInjected = errors.New("memfs: injected fault")

type memFault struct {
	ops    Op
	prefix string
	err    error
}

// memNode is a file or a directory. A file's bytes are data; synced is what
// a crash keeps, and pending the writes since the last Sync, in order.
type memNode struct {
	dir     bool
	data    []byte
	synced  []byte
	pending []memWrite
}

// memWrite is one unsynced write, or a truncation when truncate is set.
type memWrite struct {
	offBytes int64
	data     []byte
	truncate bool
}

var _ FS = (*MemFS)(nil)

// NewMemFS returns an empty MemFS whose root directory "/" (and ".") exist.
func NewMemFS(opts MemFSOptions) *MemFS {
	m := &MemFS{
		rng:     opts.Rand,
		live:    map[string]*memNode{},
		durable: map[string]*memNode{},
		locked:  map[string]bool{},
	}
	for _, root := range []string{"/", "."} {
		n := &memNode{dir: true}
		m.live[root] = n
		m.durable[root] = n
	}
	return m
}

// InjectFault makes the operations ops on every path starting with
// pathPrefix fail with err (ErrInjected if err is nil), until ClearFaults.
func (m *MemFS) InjectFault(ops Op, pathPrefix string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	m.faults = append(m.faults, memFault{ops: ops, prefix: filepath.Clean(pathPrefix), err: err})
}

// ClearFaults removes every injected fault.
func (m *MemFS) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = nil
}

// FlipBit flips bit (0 to 7) of the byte at offBytes of the named file, in
// both its current and its durable contents, as media corruption would.
func (m *MemFS) FlipBit(name string, offBytes int64, bit uint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	n, ok := m.live[name]
	if !ok || n.dir {
		return fmt.Errorf("memfs: flip bit %s: %w", name, fs.ErrNotExist)
	}
	if offBytes < 0 || offBytes >= int64(len(n.data)) || bit > 7 {
		return fmt.Errorf("memfs: flip bit %s: offset %d bit %d out of range (size %d)", name, offBytes, bit, len(n.data))
	}
	n.data[offBytes] ^= 1 << bit
	if offBytes < int64(len(n.synced)) {
		n.synced[offBytes] ^= 1 << bit
	}
	return nil
}

// Crash simulates a power loss: the namespace reverts to what SyncDir made
// durable, every file to its synced contents (plus, with MemFSOptions.Rand,
// a random prefix of its unsynced writes, the last one torn), every lock is
// released and every open handle stops working.
func (m *MemFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.locked = map[string]bool{}
	// Keep only durable entries whose parents are all durable too.
	live := map[string]*memNode{}
	for _, name := range sortedKeys(m.durable) {
		if m.durableAncestors(name) {
			live[name] = m.durable[name]
		}
	}
	m.live = live
	m.durable = map[string]*memNode{}
	for name, n := range live {
		m.durable[name] = n
	}
	// Every node ever reachable from the durable namespace reverts. Nodes
	// only reachable from the lost live namespace are garbage now.
	for _, name := range sortedKeys(live) {
		n := live[name]
		if n.dir {
			continue
		}
		n.data = slices.Clone(n.synced)
		if m.rng != nil && len(n.pending) > 0 {
			keep := m.rng.IntN(len(n.pending) + 1)
			for _, w := range n.pending[:keep] {
				n.data = applyWrite(n.data, w)
			}
			if keep < len(n.pending) && !n.pending[keep].truncate && len(n.pending[keep].data) > 0 {
				w := n.pending[keep]
				w.data = w.data[:m.rng.IntN(len(w.data))]
				n.data = applyWrite(n.data, w)
			}
			n.synced = slices.Clone(n.data)
		}
		n.pending = nil
	}
}

// durableAncestors reports whether every parent directory of name is in the
// durable namespace.
func (m *MemFS) durableAncestors(name string) bool {
	for dir := filepath.Dir(name); ; dir = filepath.Dir(dir) {
		n, ok := m.durable[dir]
		if !ok || !n.dir {
			return false
		}
		if dir == "/" || dir == "." {
			return true
		}
	}
}

func sortedKeys(nodes map[string]*memNode) []string {
	keys := make([]string, 0, len(nodes))
	for k := range nodes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// applyWrite applies w to data and returns the result.
func applyWrite(data []byte, w memWrite) []byte {
	if w.truncate {
		return resize(data, w.offBytes)
	}
	end := w.offBytes + int64(len(w.data))
	if end > int64(len(data)) {
		data = resize(data, end)
	}
	copy(data[w.offBytes:], w.data)
	return data
}

// resize returns data cut or zero-extended to sizeBytes.
func resize(data []byte, sizeBytes int64) []byte {
	if sizeBytes <= int64(len(data)) {
		return data[:sizeBytes]
	}
	if sizeBytes <= int64(cap(data)) {
		old := len(data)
		data = data[:sizeBytes]
		clear(data[old:])
		return data
	}
	grown := make([]byte, sizeBytes, max(sizeBytes, 2*int64(cap(data))))
	copy(grown, data)
	return grown
}

// fault returns the injected error for op on name, if any.
func (m *MemFS) fault(op Op, name string) error {
	for _, f := range m.faults {
		if f.ops&op != 0 && strings.HasPrefix(name, f.prefix) {
			return f.err
		}
	}
	return nil
}

func (m *MemFS) parentDir(op, name string) error {
	dir := filepath.Dir(name)
	n, ok := m.live[dir]
	if !ok || !n.dir {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if err := m.fault(OpWrite, name); err != nil {
		return nil, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	if err := m.parentDir("create", name); err != nil {
		return nil, err
	}
	n, ok := m.live[name]
	if ok && n.dir {
		return nil, &fs.PathError{Op: "create", Path: name, Err: errors.New("is a directory")}
	}
	if !ok {
		n = &memNode{}
		m.live[name] = n
	}
	n.data = n.data[:0]
	n.pending = append(n.pending, memWrite{truncate: true})
	return &memFile{m: m, n: n, name: name, gen: m.gen}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if err := m.fault(OpRead, name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n, ok := m.live[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	}
	return &memFile{m: m, n: n, name: name, gen: m.gen}, nil
}

// Rename implements FS. Only files can be renamed.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	if err := m.fault(OpWrite, oldname); err != nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: err}
	}
	if err := m.fault(OpWrite, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: newname, Err: err}
	}
	n, ok := m.live[oldname]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if n.dir {
		return &fs.PathError{Op: "rename", Path: oldname, Err: errors.New("memfs renames files only")}
	}
	if err := m.parentDir("rename", newname); err != nil {
		return err
	}
	if t, ok := m.live[newname]; ok && t.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: errors.New("is a directory")}
	}
	delete(m.live, oldname)
	m.live[newname] = n
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if err := m.fault(OpWrite, name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	n, ok := m.live[name]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(m.children(name)) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
	}
	delete(m.live, name)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := m.fault(OpWrite, dir); err != nil {
		return &fs.PathError{Op: "removeall", Path: dir, Err: err}
	}
	prefix := dir + string(filepath.Separator)
	for _, name := range sortedKeys(m.live) {
		if name == dir || strings.HasPrefix(name, prefix) {
			delete(m.live, name)
		}
	}
	return nil
}

// children returns the sorted full names of the live entries of dir.
func (m *MemFS) children(dir string) []string {
	var names []string
	for _, name := range sortedKeys(m.live) {
		if name != dir && filepath.Dir(name) == dir {
			names = append(names, name)
		}
	}
	return names
}

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := m.fault(OpRead, dir); err != nil {
		return nil, &fs.PathError{Op: "list", Path: dir, Err: err}
	}
	n, ok := m.live[dir]
	if !ok || !n.dir {
		return nil, &fs.PathError{Op: "list", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for _, name := range m.children(dir) {
		names = append(names, filepath.Base(name))
	}
	return names, nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := m.fault(OpWrite, dir); err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		n, ok := m.live[d]
		if ok {
			if !n.dir {
				return &fs.PathError{Op: "mkdir", Path: d, Err: errors.New("not a directory")}
			}
			break
		}
		missing = append(missing, d)
	}
	for _, d := range missing {
		m.live[d] = &memNode{dir: true}
	}
	return nil
}

// Lock implements FS. The lock file is created like any file; the lock
// itself is not durable and a crash releases it.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if err := m.fault(OpWrite, name); err != nil {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: err}
	}
	if err := m.parentDir("lock", name); err != nil {
		return nil, err
	}
	if m.locked[name] {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: errors.New("memfs: already locked")}
	}
	if _, ok := m.live[name]; !ok {
		m.live[name] = &memNode{}
	}
	m.locked[name] = true
	return &memLock{m: m, name: name, gen: m.gen}, nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := m.fault(OpSync, dir); err != nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	n, ok := m.live[dir]
	if !ok || !n.dir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	for _, name := range sortedKeys(m.durable) {
		if name != dir && filepath.Dir(name) == dir {
			if _, ok := m.live[name]; !ok {
				delete(m.durable, name)
			}
		}
	}
	for _, name := range m.children(dir) {
		m.durable[name] = m.live[name]
	}
	return nil
}

type memLock struct {
	m    *MemFS
	name string
	gen  uint64
}

func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.gen == l.m.gen {
		delete(l.m.locked, l.name)
	}
	return nil
}

// memFile is an open handle on a memNode. It dies with Close or Crash.
type memFile struct {
	m      *MemFS
	n      *memNode
	name   string
	gen    uint64
	closed bool
}

// check returns an error if the handle is unusable or a fault is injected.
func (f *memFile) check(op Op, opName string) error {
	if f.closed {
		return &fs.PathError{Op: opName, Path: f.name, Err: fs.ErrClosed}
	}
	if f.gen != f.m.gen {
		return &fs.PathError{Op: opName, Path: f.name, Err: errors.New("memfs: handle lost in a crash")}
	}
	if err := f.m.fault(op, f.name); err != nil {
		return &fs.PathError{Op: opName, Path: f.name, Err: err}
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check(OpRead, "read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.writeAt(p, off)
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.writeAt(p, int64(len(f.n.data)))
}

// writeAt writes with f.m.mu held.
func (f *memFile) writeAt(p []byte, off int64) (int, error) {
	if err := f.check(OpWrite, "write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	w := memWrite{offBytes: off, data: slices.Clone(p)}
	f.n.data = applyWrite(f.n.data, w)
	f.n.pending = append(f.n.pending, w)
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check(OpSync, "sync"); err != nil {
		return err
	}
	f.n.synced = append(f.n.synced[:0], f.n.data...)
	f.n.pending = nil
	return nil
}

func (f *memFile) Truncate(sizeBytes int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check(OpWrite, "truncate"); err != nil {
		return err
	}
	if sizeBytes < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	w := memWrite{offBytes: sizeBytes, truncate: true}
	f.n.data = applyWrite(f.n.data, w)
	f.n.pending = append(f.n.pending, w)
	return nil
}

// Allocate is Truncate to a larger size: MemFS has no space to reserve.
func (f *memFile) Allocate(sizeBytes int64) error {
	f.m.mu.Lock()
	size := int64(len(f.n.data))
	err := f.m.fault(OpAllocate, f.name)
	f.m.mu.Unlock()
	if err != nil {
		return &fs.PathError{Op: "fallocate", Path: f.name, Err: err}
	}
	if sizeBytes <= size {
		return nil
	}
	return f.Truncate(sizeBytes)
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed || f.gen != f.m.gen {
		return 0, &fs.PathError{Op: "stat", Path: f.name, Err: fs.ErrClosed}
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

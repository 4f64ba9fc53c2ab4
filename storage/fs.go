package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// FS is the small file system the storage package writes through. OSFS is the
// real one; MemFS is a strict in-memory one whose Crash drops every write that
// no Sync made durable, which is the crash model of the simulator.
//
// Durability follows POSIX: file contents are durable after File.Sync; the
// existence of a name (Create, Rename, Remove, MkdirAll) is durable only after
// SyncDir of the directory that holds it.
type FS interface {
	// Create creates the named file for reading and writing, truncating it if
	// it exists.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a directory and everything below it; it is not an
	// error if dir does not exist.
	RemoveAll(dir string) error
	// List returns the sorted names of the entries of dir.
	List(dir string) ([]string, error)
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string) error
	// Lock creates the named file if needed and takes an exclusive lock on
	// it; closing the returned Closer releases it. Locking a file that is
	// already locked fails.
	Lock(name string) (io.Closer, error)
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Write appends p at the end of the file.
	Write(p []byte) (int, error)
	// Sync makes the contents of the file durable, and its size: OSFS
	// uses fdatasync where there is one (Linux), which leaves out only
	// metadata no read needs (times), for a third of fsync's cost.
	Sync() error
	// Truncate changes the size of the file, extending it with zeros if
	// needed.
	Truncate(sizeBytes int64) error
	// Allocate makes the file at least sizeBytes long, reading as zeros
	// past its old end, with the space reserved: writes there change no
	// size, so syncing them is cheaper (OSFS uses fallocate(2) where there
	// is one). A shorter file is left as it is.
	Allocate(sizeBytes int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	Close() error
}

// ErrNotExist is returned (wrapped) by an FS when a file does not exist. It
// is fs.ErrNotExist, so os errors and MemFS errors match it alike.
var ErrNotExist = fs.ErrNotExist

// ReadFile reads the whole named file.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, name)
}

// readAll reads the whole contents of an open file.
func readAll(f File, name string) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf, nil
}

// WriteFileSync writes data to a new file named name: it writes a temporary
// file, syncs it, renames it over name and syncs the directory, so that after
// a crash name holds either its old contents or data, never a mix.
func WriteFileSync(fsys FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// MkdirAllSync creates dir and any missing parents and makes them durable:
// it syncs every directory from the parent of dir up to the root.
func MkdirAllSync(fsys FS, dir string) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	for d := filepath.Clean(dir); ; {
		parent := filepath.Dir(d)
		if err := fsys.SyncDir(parent); err != nil {
			return err
		}
		if parent == d || parent == "/" || parent == "." {
			return nil
		}
		d = parent
	}
}

// OSFS is the FS of the operating system.
type OSFS struct{}

var _ FS = OSFS{}

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// Open implements FS.
func (OSFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &osFile{f: f, endBytes: st.Size()}, nil
}

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// RemoveAll implements FS.
func (OSFS) RemoveAll(dir string) error { return os.RemoveAll(dir) }

// List implements FS.
func (OSFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// Lock implements FS.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// osFile is a File of OSFS. It tracks the end of the file itself so that
// Write can append without O_APPEND, which would forbid WriteAt.
type osFile struct {
	f        *os.File
	endBytes int64
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := o.f.WriteAt(p, off)
	o.endBytes = max(o.endBytes, off+int64(n))
	return n, err
}

func (o *osFile) Write(p []byte) (int, error) { return o.WriteAt(p, o.endBytes) }

func (o *osFile) Sync() error { return syncData(o.f) }

func (o *osFile) Truncate(sizeBytes int64) error {
	if err := o.f.Truncate(sizeBytes); err != nil {
		return err
	}
	o.endBytes = sizeBytes
	return nil
}

func (o *osFile) Allocate(sizeBytes int64) error {
	size, err := o.Size()
	if err != nil || size >= sizeBytes {
		return err
	}
	if err := allocate(o.f, size, sizeBytes); err != nil {
		return err
	}
	o.endBytes = max(o.endBytes, sizeBytes)
	return nil
}

func (o *osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (o *osFile) Close() error { return o.f.Close() }

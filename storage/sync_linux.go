package storage

import (
	"errors"
	"os"
	"syscall"
)

// syncData makes f's data and size durable with fdatasync(2). Measured on
// the benchmark machine, appending 4 KiB and syncing: fsync 149 µs and 52
// µs of CPU, fdatasync 56 µs and 17 µs of CPU; every replica syncs its log
// once per batch.
func syncData(f *os.File) error { return fdCall(f, "fdatasync", syscall.Fdatasync) }

// allocate extends f from size to sizeBytes with fallocate(2), which
// reserves the blocks: a write into them and its fdatasync then change no
// file size. Measured on the benchmark machine, 200-byte writes each
// followed by fdatasync: 150 µs p50 appending to a growing file, 92 µs into
// allocated space; three such writers at once, 228 µs against 155 µs. A file
// system without fallocate gets the size by truncate, which reserves
// nothing but reads the same.
func allocate(f *os.File, size, sizeBytes int64) error {
	err := fdCall(f, "fallocate", func(fd int) error { return syscall.Fallocate(fd, 0, size, sizeBytes-size) })
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return f.Truncate(sizeBytes)
	}
	return err
}

// fdCall runs call on f's descriptor, again while a signal interrupts it
// (EINTR), and names f and op in its error.
func fdCall(f *os.File, op string, call func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = call(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: op, Path: f.Name(), Err: serr}
	}
	return nil
}

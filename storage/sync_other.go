//go:build !linux

package storage

import "os"

// syncData makes f's data durable: fsync where fdatasync is not to be had.
func syncData(f *os.File) error { return f.Sync() }

// allocate extends f to sizeBytes with zeros: without fallocate the space is
// not reserved, but it reads the same.
func allocate(f *os.File, _, sizeBytes int64) error { return f.Truncate(sizeBytes) }

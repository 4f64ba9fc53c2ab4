//go:build !linux

package storage

import "os"

// syncData makes f's data durable: fsync where fdatasync is not to be had.
func syncData(f *os.File) error { return f.Sync() }

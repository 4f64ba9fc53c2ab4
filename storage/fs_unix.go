//go:build unix

package storage

import (
	"os"
	"syscall"
)

// LocksExclude reports whether Lock keeps a second process out.
const LocksExclude = true

// lockFile takes an exclusive, non-blocking advisory lock on f.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

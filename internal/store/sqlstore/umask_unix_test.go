//go:build unix

package sqlstore_test

import "syscall"

// setUmask sets the process umask and returns a func restoring it.
func setUmask(mask int) (restore func()) {
	old := syscall.Umask(mask)
	return func() { syscall.Umask(old) }
}

//go:build !unix

package sqlstore_test

// setUmask is a no-op where there is no umask.
func setUmask(int) (restore func()) { return func() {} }

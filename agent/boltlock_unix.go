//go:build unix

package agent

import (
	"os"
	"syscall"
)

// lockForCheck takes the lock bbolt takes (flock, exclusive) so that the
// raw layout check never reads a file another agent is writing; it
// returns ok=false when someone holds it. The caller unlocks before
// bbolt.Open, which takes the lock again on its own descriptor.
func lockForCheck(path string) (unlock func(), ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return func() {}, true // missing: nothing to check
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

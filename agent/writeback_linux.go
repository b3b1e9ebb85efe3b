package agent

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing a file's range to disk
// without waiting (sync_file_range SYNC_FILE_RANGE_WRITE): the fsync before
// a release is recorded verified then has little left, instead of the
// whole release at once.
func startWriteback(fd uintptr, off, n int64) error {
	return unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

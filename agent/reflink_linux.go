package agent

import (
	"os"

	"golang.org/x/sys/unix"
)

// reflink makes dst share src's extents (btrfs, XFS with reflink, …); it
// fails on filesystems that cannot, and the caller copies instead.
func reflink(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

package btclient

import "golang.org/x/sys/unix"

func setNotSentLowWat(fd uintptr, n int) {
	_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
}

// notSentLowWat reads the option back (tests); -1 when unknown.
func notSentLowWat(fd uintptr) int {
	n, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	if err != nil {
		return -1
	}
	return n
}

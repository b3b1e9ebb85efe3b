//go:build !linux

package btclient

func setNotSentLowWat(uintptr, int) {}

func notSentLowWat(uintptr) int { return -1 }

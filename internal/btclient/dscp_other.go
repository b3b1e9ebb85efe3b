//go:build !linux

package btclient

import "errors"

func setDSCP(uintptr, int) error { return errors.New("DSCP marking is implemented for Linux only") }

func socketDSCP(uintptr) int { return -1 }

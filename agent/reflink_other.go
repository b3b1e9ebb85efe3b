//go:build !linux

package agent

import (
	"errors"
	"os"
)

func reflink(dst, src *os.File) error { return errors.New("reflink: not supported on this system") }

//go:build !unix

package tracker

import "time"

func processCPU() time.Duration { return 0 }

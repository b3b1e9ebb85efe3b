package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestWriteFaultReason(t *testing.T) {
	path := "/cache/releases/app/2.0/bin/app"
	for _, tc := range []struct {
		name    string
		err     error
		noSpace bool
		want    string
	}{
		{"storage write", fmt.Errorf("write piece 3: %w", &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}),
			true, "disk full: no space left on device writing " + path},
		{"quota", &fs.PathError{Op: "write", Path: path, Err: syscall.EDQUOT},
			true, "disk full: disk quota exceeded writing " + path},
		{"read-only", &fs.PathError{Op: "open", Path: path, Err: syscall.EROFS},
			false, "cannot write: read-only file system writing " + path},
		{"no path", fmt.Errorf("commit: %w", syscall.ENOSPC), true, "disk full: commit: no space left on device"},
		{"other", errors.New("boom"), false, "cannot write: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isNoSpace(tc.err); got != tc.noSpace {
				t.Errorf("isNoSpace = %v, want %v", got, tc.noSpace)
			}
			if got := writeFaultReason(tc.err); got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRoomNeeded(t *testing.T) {
	for _, tc := range []struct{ remaining, piece, want int64 }{
		{remaining: 5 << 20, piece: 256 << 10, want: 5 << 20},  // the whole small remainder
		{remaining: 1 << 30, piece: 256 << 10, want: 16 << 20}, // room for some progress, not all
		{remaining: 1 << 30, piece: 16 << 20, want: 64 << 20},  // four large pieces
		{remaining: 0, piece: 1 << 20, want: 0},                // complete
		{remaining: -5, piece: 1 << 20, want: 0},               // never negative
	} {
		if got := roomNeeded(tc.remaining, tc.piece); got != tc.want {
			t.Errorf("roomNeeded(%d, %d) = %d, want %d", tc.remaining, tc.piece, got, tc.want)
		}
	}
}

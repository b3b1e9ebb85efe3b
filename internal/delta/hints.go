// Package delta describes how a new release's bytes can be rebuilt from a base
// release an agent already holds. The publisher computes the hints (a
// rolling-checksum match against the base) and signs them into the release
// manifest; agents use them to assemble pieces locally and fetch only the rest.
// Hints are advice: every assembled piece is still checked against its SHA-1
// and every file against its signed SHA-256, so a wrong or hostile hint costs
// bytes, never integrity.
package delta

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Limits on hints, so a manifest cannot make an agent allocate or loop without bound.
const (
	MaxRanges  = 1 << 20 // ranges in one release's hints
	MaxPathLen = 4096    // bytes of a base file path
	// MaxBaseOffset bounds BaseOff+Len, so readers can add them without overflow.
	MaxBaseOffset = 1 << 44
)

// Range says that bytes [Off, Off+Len) of the new release's payload, counted in
// torrent order (files concatenated as the manifest lists them), equal bytes
// [BaseOff, BaseOff+Len) of the file BasePath of the base release.
type Range struct {
	Off      int64  `json:"off"`
	Len      int64  `json:"len"`
	BasePath string `json:"base_path"` // slash-separated, relative to the base release root
	BaseOff  int64  `json:"base_off"`
}

// Hints is the signed mapping from a new release onto its base. Ranges are
// sorted by Off and do not overlap; adjacent matches are merged, so the list
// grows with the number of changed regions, not with the release size.
type Hints struct {
	Base   string  `json:"base"` // the base release's version (same name as the new one)
	Ranges []Range `json:"ranges"`
}

// Validate checks the hints against the size of the new release: ranges sorted,
// disjoint, non-empty, inside [0, total), with clean relative base paths.
func (h *Hints) Validate(total int64) error {
	if h.Base == "" {
		return errors.New("delta hints name no base version")
	}
	if len(h.Ranges) > MaxRanges {
		return fmt.Errorf("delta hints list %d ranges, more than %d", len(h.Ranges), MaxRanges)
	}
	var end int64
	for i, r := range h.Ranges {
		if r.Len <= 0 || r.Off < end || r.Off > total-r.Len || r.BaseOff < 0 || r.BaseOff > MaxBaseOffset-r.Len {
			return fmt.Errorf("delta range %d (off %d, len %d, base_off %d) is empty, overlaps, is out of order or outside the release", i, r.Off, r.Len, r.BaseOff)
		}
		if len(r.BasePath) == 0 || len(r.BasePath) > MaxPathLen || path.IsAbs(r.BasePath) ||
			path.Clean(r.BasePath) != r.BasePath || r.BasePath == ".." || strings.HasPrefix(r.BasePath, "../") ||
			strings.ContainsRune(r.BasePath, 0) || strings.ContainsRune(r.BasePath, '\\') {
			return fmt.Errorf("delta range %d has an invalid base path %q", i, r.BasePath)
		}
		end = r.Off + r.Len
	}
	return nil
}

// Covered returns the number of bytes of [off, off+n) that the ranges cover.
func (h *Hints) Covered(off, n int64) int64 {
	var c int64
	for _, r := range h.Overlapping(off, n) {
		lo, hi := max(r.Off, off), min(r.Off+r.Len, off+n)
		c += hi - lo
	}
	return c
}

// Overlapping returns the ranges that overlap [off, off+n), in order.
func (h *Hints) Overlapping(off, n int64) []Range {
	rs := h.Ranges
	// First range ending after off.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		if rs[m].Off+rs[m].Len <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	j := lo
	for j < len(rs) && rs[j].Off < off+n {
		j++
	}
	return rs[lo:j]
}

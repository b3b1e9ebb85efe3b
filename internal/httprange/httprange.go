// Package httprange checks HTTP Range headers before net/http serves
// them, so a request cannot turn a small header into a large multipart
// answer.
package httprange

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// MaxRanges bounds the ranges of one request. Web seeds and agents ask for
// one range at a time; a multipart answer to thousands of ranges is an
// amplification (RFC 9110 §14.2 lets a server reject such lists).
const MaxRanges = 16

// Range is a resolved range: bytes [start, start+length) of the file.
type Range struct{ Start, Length int64 }

// Errors of Parse.
var (
	ErrTooMany   = errors.New("too many ranges")
	ErrOverlap   = errors.New("overlapping ranges")
	ErrMalformed = errors.New("malformed range")
)

// Parse resolves a Range header value against a file of size bytes.
// It stops after MaxRanges+1 entries, so a header of 50,000 ranges costs
// no more than one of 17. Unsatisfiable single entries are skipped, as
// RFC 9110 says; the caller decides what an empty result means. Ranges
// that overlap are refused: with them a small header asks for the file
// many times over.
func Parse(h string, size int64) ([]Range, error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return nil, ErrMalformed
	}
	var out []Range
	for n := 0; spec != ""; n++ {
		if n == MaxRanges {
			return nil, ErrTooMany
		}
		var part string
		part, spec, _ = strings.Cut(spec, ",")
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return nil, ErrMalformed
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var r Range
		switch {
		case first == "":
			// Suffix: the last N bytes.
			n, err := parseDigits(last)
			if err != nil {
				return nil, err
			}
			if n == 0 || size == 0 {
				continue
			}
			n = min(n, size)
			r = Range{Start: size - n, Length: n}
		default:
			s, err := parseDigits(first)
			if err != nil {
				return nil, err
			}
			end := size - 1
			if last != "" {
				e, err := parseDigits(last)
				if err != nil {
					return nil, err
				}
				if e < s {
					return nil, ErrMalformed
				}
				end = min(e, size-1)
			}
			if s >= size {
				continue
			}
			r = Range{Start: s, Length: end - s + 1}
		}
		out = append(out, r)
	}
	sorted := slices.Clone(out)
	slices.SortFunc(sorted, func(a, b Range) int { return compareInt64(a.Start, b.Start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Start < sorted[i-1].Start+sorted[i-1].Length {
			return nil, ErrOverlap
		}
	}
	return out, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseDigits parses a non-negative decimal without sign or spaces.
func parseDigits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, ErrMalformed
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrMalformed
	}
	return n, nil
}

// Check answers a request whose Range header is abusive (too many or
// overlapping ranges) with 416 and reports false; anything else is left to
// http.ServeContent. Malformed headers are left too: ServeContent answers
// them itself, with the same bounded cost.
func Check(w http.ResponseWriter, r *http.Request, size int64) bool {
	h := r.Header.Get("Range")
	if h == "" || r.Method != http.MethodGet {
		return true
	}
	// Counting separators first bounds every header, including ones this
	// parser and ServeContent's might read differently.
	_, err := Parse(h, size)
	if strings.Count(h, ",") >= MaxRanges {
		err = ErrTooMany
	}
	if errors.Is(err, ErrTooMany) || errors.Is(err, ErrOverlap) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		http.Error(w, fmt.Sprintf("range refused: %v (at most %d, not overlapping)", err, MaxRanges), http.StatusRequestedRangeNotSatisfiable)
		return false
	}
	return true
}

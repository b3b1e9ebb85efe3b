// Package bytesize reads and writes byte counts such as "20GiB".
//
// Every unit is binary: K, KB and KiB all mean 1024 bytes, M, MB and MiB
// 1024² bytes, and so on up to T/TB/TiB; units are case-insensitive. So
// "MB" and "MiB" mean the same wherever a size is read (cache quotas, piece
// lengths, demo sizes), and no config changes meaning with the key it is
// under. Piece lengths must be powers of two, so a decimal "4MB" could only
// mean 4 MiB there anyway. Sizes are written with IEC symbols (KiB, MiB),
// which cannot be misread.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a byte count read from text such as "20GiB", "1.5TiB" or "4096".
type Size int64

// units by lower-case suffix; the longest suffix is tried first.
var units = []struct {
	suffix string
	shift  uint
}{
	{"tib", 40}, {"gib", 30}, {"mib", 20}, {"kib", 10},
	{"tb", 40}, {"gb", 30}, {"mb", 20}, {"kb", 10},
	{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}, {"b", 0},
}

// Parse reads a size: a non-negative number (a fraction only if the result
// is a whole number of bytes), optionally followed by a unit.
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	num, shift := t, uint(0)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			num, shift = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.shift
			break
		}
	}
	if num == "" || num[0] < '0' || num[0] > '9' {
		return 0, fmt.Errorf("%q: want a number of bytes, optionally with a unit such as KiB, MiB or GiB", s)
	}
	if !strings.ContainsAny(num, ".eE") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("%q: number out of range", s)
			}
			return 0, fmt.Errorf("%q: unknown unit (use KiB, MiB, GiB or TiB)", s)
		}
		if n > math.MaxInt64>>shift {
			return 0, fmt.Errorf("%q: number out of range", s)
		}
		return Size(n << shift), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: unknown unit (use KiB, MiB, GiB or TiB)", s)
	}
	f *= float64(uint64(1) << shift)
	if f >= 1<<62 {
		return 0, fmt.Errorf("%q: number out of range", s)
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return Size(f), nil
}

// UnmarshalText reads a size from a config file.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// MarshalText writes the size exactly, in the largest unit that divides it
// ("20GiB", "1536"), so that Parse reads back the same value.
func (s Size) MarshalText() ([]byte, error) {
	n := int64(s)
	for _, u := range []struct {
		sym   string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return []byte(strconv.FormatInt(n>>u.shift, 10) + u.sym), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// String formats the size for people, as Format does.
func (s Size) String() string { return Format(int64(s)) }

// Format writes n bytes for people: "512 B", "1.5 KiB", "64.0 MiB".
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%s%.1f %ciB", sign, float64(n)/float64(div), "KMGTPE"[exp])
}

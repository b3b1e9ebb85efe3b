// Package bytesize reads and writes byte counts such as "20GiB".
//
// Units follow IEC 80000-13, as rates in policy do: KiB, MiB, GiB and TiB
// are binary (1 MiB = 1024² bytes), kB/KB, MB, GB and TB decimal (1 MB =
// 10⁶ bytes). A bare letter K, M, G or T is binary, as in dd, sort -S and
// ls -h. Units are case-insensitive. So "MB" means 10⁶ bytes wherever a
// size is read (cache quotas, piece lengths, demo sizes) and in rates
// ("10MB/s"); a piece length, which must be a power of two, is written
// 4MiB or 4M. Sizes are written with IEC symbols ("64.0 MiB"), which
// cannot be misread.
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
	mult   int64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1},
}

// Parse reads a size: a non-negative number (a fraction only if the result
// is a whole number of bytes), optionally followed by a unit.
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	num, mult := t, int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
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
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q: number out of range", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: unknown unit (use KiB, MiB, GiB or TiB)", s)
	}
	f *= float64(mult)
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

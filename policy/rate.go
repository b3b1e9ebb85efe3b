package policy

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Rate is a transfer rate in bytes per second; 0 means unlimited.
type Rate int64

// Unlimited is the Rate that imposes no limit.
const Unlimited Rate = 0

// ParseRate reads a rate. Bits and bytes are always explicit:
//
//	"unlimited", "0"            no limit (also "none")
//	"2Mbit", "512 kbit/s"       bits per second: bit, kbit, Mbit, Gbit, Tbit
//	"10MB/s", "1.5 GB", "300B"  bytes per second: B, kB, MB, GB, TB; "byte(s)" also
//	"4MiB/s", "64KiB"           binary bytes: KiB, MiB, GiB, TiB (also Kibit, Mibit …)
//	"2000000"                   a bare number is bits per second
//
// The "/s" suffix is optional. Prefixes are decimal (k = 1000) unless
// binary (Ki = 1024) and are not case sensitive; the unit "B" must be upper
// case. "Mbps", "kb" and the like are refused as ambiguous (tc reads "mbps"
// as megabytes). Bits convert to bytes rounding up, so a non-zero rate never
// becomes unlimited.
func ParseRate(s string) (Rate, error) {
	r, err := parseRate(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	return r, nil
}

var ratePrefixes = map[string]int64{
	"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
}

func parseRate(s string) (Rate, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, errors.New(`empty; write e.g. "2Mbit", "10MB/s" or "unlimited"`)
	case "unlimited", "none":
		return Unlimited, nil
	}
	if s[0] == '-' {
		return 0, errors.New("must not be negative")
	}
	// The number: digits with at most one decimal point.
	n, dot := 0, false
	for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] == '.' && !dot) {
		dot = dot || s[n] == '.'
		n++
	}
	num := s[:n]
	if strings.Trim(num, ".") == "" {
		return 0, errors.New(`no number; write e.g. "2Mbit", "10MB/s" or "unlimited"`)
	}
	unit := strings.TrimSuffix(strings.Join(strings.Fields(s[n:]), ""), "/s")
	lower := strings.ToLower(unit)

	var prefix string
	bits := false
	switch {
	case unit == "":
		bits = true // a bare number is bits per second
	case strings.HasSuffix(lower, "bps"):
		return 0, fmt.Errorf(`ambiguous unit %q (bits or bytes?): write e.g. "%sMbit" for bits or "%sMB/s" for bytes per second`, unit, num, num)
	case strings.HasSuffix(lower, "bits"), strings.HasSuffix(lower, "bit"):
		bits, prefix = true, strings.TrimSuffix(strings.TrimSuffix(lower, "s"), "bit")
	case strings.HasSuffix(lower, "bytes"), strings.HasSuffix(lower, "byte"):
		prefix = strings.TrimSuffix(strings.TrimSuffix(lower, "s"), "byte")
	case strings.HasSuffix(unit, "B"):
		prefix = strings.ToLower(strings.TrimSuffix(unit, "B"))
	case strings.HasSuffix(unit, "b"):
		return 0, fmt.Errorf(`ambiguous unit %q (bits or bytes?): write e.g. "%s%sbit" for bits or "%s%sB/s" for bytes`, unit, num, unit[:len(unit)-1], num, strings.ToUpper(unit[:len(unit)-1]))
	default:
		return 0, fmt.Errorf(`unknown unit %q: use bit, kbit, Mbit, Gbit for bits or B, kB, MB, GB, KiB, MiB, GiB for bytes per second`, unit)
	}
	mult, ok := ratePrefixes[prefix]
	if !ok {
		return 0, fmt.Errorf(`unknown unit %q: use bit, kbit, Mbit, Gbit for bits or B, kB, MB, GB, KiB, MiB, GiB for bytes per second`, unit)
	}
	v, _ := new(big.Rat).SetString(num) // always valid: digits with at most one point
	v.Mul(v, new(big.Rat).SetInt64(mult))
	if bits {
		v.Quo(v, big.NewRat(8, 1))
	}
	// Round up: a tiny but non-zero rate must not turn into "unlimited".
	q, rem := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("too large: the limit is %d bytes per second", int64(math.MaxInt64))
	}
	return Rate(q.Int64()), nil
}

// String writes r so that ParseRate reads it back: "unlimited", in whole
// bits per second where possible ("2Mbit/s", "512kbit/s"), else in binary
// bytes ("1KiB/s") or bytes ("1234B/s").
func (r Rate) String() string {
	if r == Unlimited {
		return "unlimited"
	}
	if r > 0 && r <= math.MaxInt64/8 {
		b := int64(r) * 8
		for _, u := range []struct {
			n    int64
			name string
		}{{1e12, "Tbit/s"}, {1e9, "Gbit/s"}, {1e6, "Mbit/s"}, {1e3, "kbit/s"}} {
			if b%u.n == 0 {
				return fmt.Sprintf("%d%s", b/u.n, u.name)
			}
		}
	}
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "TiB/s"}, {1 << 30, "GiB/s"}, {1 << 20, "MiB/s"}, {1 << 10, "KiB/s"}} {
		if int64(r)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(r)/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB/s", int64(r))
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseRate, so a
// YAML value "2Mbit" or 2000000 (bits per second) decodes into a Rate.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// RateProfile is a named set of limits, e.g. "business": 2Mbit down,
// 512kbit up. Down and Up cap one agent's payload traffic; WANDown and
// WANUp cap what crosses the site's WAN link (the origin and peers outside
// the site) for the whole site: its agents share them (agent/wanlimit.go).
// Every Rate is bytes per second, 0 = unlimited.
type RateProfile struct {
	Name    string `yaml:"name"`
	Down    Rate   `yaml:"down"`
	Up      Rate   `yaml:"up"`
	WANDown Rate   `yaml:"wan_down"`
	WANUp   Rate   `yaml:"wan_up"`
}

// UnlimitedProfile is the profile used when no schedule rule applies and
// no default profile is named.
var UnlimitedProfile = RateProfile{Name: "unlimited"}

// CheckProfiles validates a rate configuration: profile names are present
// and unique, the schedule is valid and names only known profiles, and def
// ("" for UnlimitedProfile) is a known profile. Errors name the field as in
// a rates section {profiles, schedule, default} (internal/fielderr).
func CheckProfiles(s Schedule, profiles []RateProfile, def string) error {
	known := make(map[string]bool, len(profiles))
	for i, p := range profiles {
		at := fielderr.Index("profiles", i)
		switch {
		case p.Name == "":
			return fielderr.New(at+".name", "rate profile %d has no name", i+1)
		case known[p.Name]:
			return fielderr.New(at+".name", "rate profile %q is defined twice", p.Name)
		}
		for _, r := range []struct {
			field string
			v     Rate
		}{{"down", p.Down}, {"up", p.Up}, {"wan_down", p.WANDown}, {"wan_up", p.WANUp}} {
			if r.v < 0 {
				return fielderr.New(at+"."+r.field, "rate profile %q: negative rate", p.Name)
			}
		}
		known[p.Name] = true
	}
	for i, r := range s.Rules {
		at := fielderr.Index("schedule", i)
		if err := r.Window.Validate(); err != nil {
			return fielderr.New(at+".window", "rate schedule: rule %d (%s): %v", i+1, r.Window, err)
		}
		if r.Name == "" {
			return fielderr.New(at+".name", "rate schedule: rule %d (%s): no name", i+1, r.Window)
		}
		if !known[r.Name] {
			return fielderr.New(at+".name", "rate schedule rule %d (%s): no rate profile named %q", i+1, r.Window, r.Name)
		}
	}
	if def != "" && !known[def] {
		return fielderr.New("default", "default rate profile %q is not defined", def)
	}
	return nil
}

// ProfileAt returns the rate profile in force at t: the profile named by
// the schedule's first matching rule, else the profile named def, else
// (def == "") UnlimitedProfile. It fails only for a name that is not among
// profiles, which CheckProfiles catches when the config is loaded. Call it
// again at s.NextChange(t) to switch limits at the window edge.
func ProfileAt(s Schedule, profiles []RateProfile, def string, t time.Time) (RateProfile, error) {
	name, ok := s.At(t)
	if !ok {
		if def == "" {
			return UnlimitedProfile, nil
		}
		name = def
	}
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return RateProfile{}, fmt.Errorf("no rate profile named %q", name)
}

// Package sitecode holds the forensic site codes of A/B watermarked media:
// a table giving every site a codeword (one bit per segment position:
// 0 = variant A, 1 = variant B), the generator that keeps codewords far
// apart, and the decoder that names the site whose codeword is nearest to
// the variant sequence read from a leaked copy. It is pure logic: the table
// travels as a signed catalog target (catalog/sitecodes.go).
package sitecode

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/swarmship/swarmship/internal/release"
)

// Limits keep a hostile table from costing an agent much: the distance
// check is quadratic in the number of sites.
const (
	MaxLength = 4096
	MaxSites  = 10_000
)

// Table is the signed site → codeword mapping.
type Table struct {
	// Length is the number of bits of every codeword: segment position i
	// of a release carries bit i mod Length.
	Length int `json:"length"`
	// MinDistance is the least number of positions in which any two
	// codewords differ; Validate checks it, so readers can rely on it.
	MinDistance int `json:"min_distance"`
	// Sites maps a site name to its codeword, written as Length
	// characters '0' (variant A) and '1' (variant B).
	Sites map[string]string `json:"sites"`
}

// Code is a codeword as bits (bit i of word i/64).
type Code []uint64

// Bit returns position i of c.
func (c Code) Bit(i int) int { return int(c[i/64]>>(i%64)) & 1 }

func (c Code) set(i int) { c[i/64] |= 1 << (i % 64) }

// String writes c as length '0'/'1' characters.
func (c Code) String(length int) string {
	var b strings.Builder
	for i := range length {
		b.WriteByte('0' + byte(c.Bit(i)))
	}
	return b.String()
}

func distance(a, b Code) int {
	d := 0
	for i := range a {
		d += bits.OnesCount64(a[i] ^ b[i])
	}
	return d
}

func words(length int) int { return (length + 63) / 64 }

// ParseCode reads a '0'/'1' codeword of the given length.
func ParseCode(s string, length int) (Code, error) {
	if len(s) != length {
		return nil, fmt.Errorf("codeword has %d bits, want %d", len(s), length)
	}
	c := make(Code, words(length))
	for i := range length {
		switch s[i] {
		case '0':
		case '1':
			c.set(i)
		default:
			return nil, fmt.Errorf("codeword contains %q: use 0 and 1", s[i])
		}
	}
	return c, nil
}

// Codes returns the table's codewords by site, checked.
func (t *Table) Codes() (map[string]Code, error) {
	if t.Length < 1 || t.Length > MaxLength {
		return nil, fmt.Errorf("site codes: length %d, want 1 to %d", t.Length, MaxLength)
	}
	if len(t.Sites) > MaxSites {
		return nil, fmt.Errorf("site codes: %d sites, more than %d", len(t.Sites), MaxSites)
	}
	if t.MinDistance < 1 || t.MinDistance > t.Length {
		return nil, fmt.Errorf("site codes: min_distance %d, want 1 to %d", t.MinDistance, t.Length)
	}
	out := make(map[string]Code, len(t.Sites))
	for site, s := range t.Sites {
		if err := release.ValidateName("site", site); err != nil {
			return nil, fmt.Errorf("site codes: %w", err)
		}
		c, err := ParseCode(s, t.Length)
		if err != nil {
			return nil, fmt.Errorf("site codes: site %s: %w", site, err)
		}
		out[site] = c
	}
	return out, nil
}

// Validate checks the table whole, including that every two codewords
// differ in at least MinDistance positions.
func (t *Table) Validate() error {
	codes, err := t.Codes()
	if err != nil {
		return err
	}
	sites := sortedSites(codes)
	for i, a := range sites {
		for _, b := range sites[i+1:] {
			if d := distance(codes[a], codes[b]); d < t.MinDistance {
				return fmt.Errorf("site codes: %s and %s differ in %d positions, less than min_distance %d", a, b, d, t.MinDistance)
			}
		}
	}
	return nil
}

func sortedSites(codes map[string]Code) []string {
	sites := make([]string, 0, len(codes))
	for s := range codes {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	return sites
}

// Parse decodes and validates a table strictly.
func Parse(b []byte) (*Table, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("site codes: %w", err)
	}
	if dec.More() {
		return nil, errors.New("site codes: trailing data")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Marshal encodes the table canonically (sorted sites, indented).
func (t *Table) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DefaultMinDistance is the distance asked of a new table of the given
// length: 30% of it (12 of 40), about the most a greedy random search still
// reaches quickly for 1,000 sites at length 40 (the Gilbert-Varshamov bound
// promises ~300 codewords at distance 12; random greedy search does better
// in practice for this size).
func DefaultMinDistance(length int) int { return max(1, length*3/10) }

// maxTries bounds the random candidates drawn for one new codeword.
const maxTries = 200_000

// Extend returns a copy of t with a codeword for every site in sites that
// has none, each at least t.MinDistance from every other. Existing
// codewords never change: a copy leaked before a site was added must
// still trace to the same site. The search is deterministic for a given
// seed, table and site list, so two operators adding the same sites get
// the same table.
func Extend(t *Table, sites []string, seed string) (*Table, error) {
	codes, err := t.Codes()
	if err != nil {
		return nil, err
	}
	out := &Table{Length: t.Length, MinDistance: t.MinDistance, Sites: make(map[string]string, len(t.Sites)+len(sites))}
	for s, c := range t.Sites {
		out.Sites[s] = c
	}
	var fresh []string
	for _, s := range sites {
		if err := release.ValidateName("site", s); err != nil {
			return nil, err
		}
		if _, ok := codes[s]; !ok {
			fresh = append(fresh, s)
		}
	}
	sort.Strings(fresh)
	fresh = compactSorted(fresh)
	if len(codes)+len(fresh) > MaxSites {
		return nil, fmt.Errorf("site codes: %d sites, more than %d", len(codes)+len(fresh), MaxSites)
	}
	list := make([]Code, 0, len(codes)+len(fresh))
	for _, s := range sortedSites(codes) {
		list = append(list, codes[s])
	}
	key := sha256.Sum256([]byte("swarmship site codes\x00" + seed + "\x00" + fmt.Sprint(len(codes))))
	rng := rand.New(rand.NewChaCha8(key))
	w := words(t.Length)
	for _, s := range fresh {
		found := false
		for range maxTries {
			c := make(Code, w)
			for i := range c {
				c[i] = rng.Uint64()
			}
			if r := t.Length % 64; r != 0 {
				c[w-1] &= 1<<r - 1
			}
			ok := true
			for _, o := range list {
				if distance(c, o) < t.MinDistance {
					ok = false
					break
				}
			}
			if ok {
				list = append(list, c)
				out.Sites[s] = c.String(t.Length)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("site codes: no codeword of %d bits at distance >= %d from the %d others found for site %s: use a longer code or a smaller distance",
				t.Length, t.MinDistance, len(list), s)
		}
	}
	return out, nil
}

func compactSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Symbol is what a leaked copy shows at one segment position.
type Symbol int8

// Symbols of a read copy.
const (
	Missing Symbol = -1 // absent, or bytes of neither signed variant
	A       Symbol = 0
	B       Symbol = 1
)

// Verdict is the decoder's answer for one leaked copy.
type Verdict struct {
	// Site is the site named, "" when the decoder refuses to name one.
	Site string `json:"site,omitempty"`
	// Nearest is the closest site even when it is not named, with its
	// number of mismatching positions; Runner and RunnerDistance are the
	// next one.
	Nearest        string `json:"nearest"`
	Distance       int    `json:"distance"`
	Runner         string `json:"runner_up,omitempty"`
	RunnerDistance int    `json:"runner_up_distance,omitempty"`
	// Read is how many positions showed a variant; Radius is how many
	// mismatches can be corrected over them: (d-1)/2 with d the least
	// distance between two codewords on the positions read.
	Read   int    `json:"positions_read"`
	Radius int    `json:"radius"`
	Why    string `json:"why,omitempty"`
}

// Decoder reads leaked copies against one table; it caches the code's
// least distance per set of positions read.
type Decoder struct {
	t     *Table
	sites []string
	codes []Code
	dmin  map[string]int
}

// NewDecoder checks t and prepares to decode against it.
func NewDecoder(t *Table) (*Decoder, error) {
	codes, err := t.Codes()
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, errors.New("site codes: the table has no sites")
	}
	d := &Decoder{t: t, sites: sortedSites(codes), dmin: map[string]int{}}
	for _, s := range d.sites {
		d.codes = append(d.codes, codes[s])
	}
	return d, nil
}

func maskedDistance(a, b, mask Code) int {
	d := 0
	for i := range a {
		d += bits.OnesCount64((a[i] ^ b[i]) & mask[i])
	}
	return d
}

// leastDistance is the least distance between two codewords on the
// positions in mask (read positions when there is one site).
func (d *Decoder) leastDistance(mask Code, read int) int {
	key := fmt.Sprint([]uint64(mask))
	if v, ok := d.dmin[key]; ok {
		return v
	}
	dmin := read
	for i, a := range d.codes {
		for _, b := range d.codes[i+1:] {
			if x := maskedDistance(a, b, mask); x < dmin {
				dmin = x
			}
		}
	}
	d.dmin[key] = dmin
	return dmin
}

// Decode names the site whose codeword is nearest to seq (one symbol per
// segment position; position i is compared with codeword bit i mod
// Length). It names a site only when its distance is within the unique
// decoding radius of the code restricted to the positions read: then no
// other codeword can be as close, and a copy altered in at most Radius
// positions (or mixed from several sites' copies in that few) still traces
// to its source. Otherwise it refuses and says why.
func (d *Decoder) Decode(seq []Symbol) Verdict {
	t := d.t
	// Fold the sequence onto codeword positions: a position read twice
	// (a release longer than the code) counts once if both agree, and as
	// unread if they disagree (a mix).
	w := words(t.Length)
	mask, val := make(Code, w), make(Code, w)
	conflict := make(Code, w)
	for i, s := range seq {
		if s == Missing {
			continue
		}
		p := i % t.Length
		if mask.Bit(p) == 1 && val.Bit(p) != int(s) {
			conflict.set(p)
			continue
		}
		mask.set(p)
		if s == B {
			val.set(p)
		}
	}
	for i := range mask {
		mask[i] &^= conflict[i]
	}
	v := Verdict{}
	for _, m := range mask {
		v.Read += bits.OnesCount64(m)
	}
	v.Nearest, v.Distance = d.sites[0], maskedDistance(d.codes[0], val, mask)
	v.RunnerDistance = -1
	for i, s := range d.sites[1:] {
		x := maskedDistance(d.codes[i+1], val, mask)
		switch {
		case x < v.Distance:
			v.Runner, v.RunnerDistance = v.Nearest, v.Distance
			v.Nearest, v.Distance = s, x
		case v.RunnerDistance < 0 || x < v.RunnerDistance:
			v.Runner, v.RunnerDistance = s, x
		}
	}
	if v.RunnerDistance < 0 {
		v.RunnerDistance = 0
	}
	// Each unread position lowers the distance of two codewords by at
	// most one: the signed minimum less the unread positions is a bound
	// that costs nothing; the exact value (quadratic in sites) only when
	// that bound is useless.
	dmin := t.MinDistance - (t.Length - v.Read)
	if dmin < 1 {
		dmin = d.leastDistance(mask, v.Read)
	}
	v.Radius = max(0, (dmin-1)/2)
	switch {
	case v.Read == 0:
		v.Why = "no segment of the copy matches a signed variant"
	case dmin == 0:
		v.Why = fmt.Sprintf("the %d positions read do not tell every two sites apart", v.Read)
	case v.Distance > v.Radius:
		v.Why = fmt.Sprintf("nearest site %s differs in %d of %d positions read, more than the %d the code corrects: the copy may be altered or mix several sites' copies", v.Nearest, v.Distance, v.Read, v.Radius)
	case v.Runner != "" && v.RunnerDistance <= v.Distance:
		v.Why = fmt.Sprintf("sites %s and %s are equally near", v.Nearest, v.Runner)
	default:
		v.Site = v.Nearest
	}
	return v
}

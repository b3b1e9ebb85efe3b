package sitecode

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func thousandSites(t *testing.T) (*Table, []string) {
	t.Helper()
	var sites []string
	for i := range 1000 {
		sites = append(sites, fmt.Sprintf("store-%04d", i))
	}
	tab, err := Extend(&Table{Length: 40, MinDistance: DefaultMinDistance(40), Sites: map[string]string{}}, sites, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(); err != nil {
		t.Fatal(err)
	}
	return tab, sites
}

func copyOf(tab *Table, site string, segments int) []Symbol {
	c, _ := ParseCode(tab.Sites[site], tab.Length)
	seq := make([]Symbol, segments)
	for i := range seq {
		seq[i] = Symbol(c.Bit(i % tab.Length))
	}
	return seq
}

// Every one of 1,000 sites is named from its own copy of a 40-segment
// release, and from copies with a few segments missing.
func TestDecodeNamesEveryOneOfThousandSites(t *testing.T) {
	tab, sites := thousandSites(t)
	dec, err := NewDecoder(tab)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		v := dec.Decode(copyOf(tab, s, 40))
		if v.Site != s || v.Distance != 0 {
			t.Fatalf("copy of %s: verdict %+v", s, v)
		}
		if v.RunnerDistance < tab.MinDistance {
			t.Fatalf("copy of %s: runner-up at %d, below the table's distance %d", s, v.RunnerDistance, tab.MinDistance)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, s := range sites {
		seq := copyOf(tab, s, 40)
		missing := 1 + i%8 // 1 to 8 segments lost
		for _, p := range rng.Perm(40)[:missing] {
			seq[p] = Missing
		}
		v := dec.Decode(seq)
		if v.Site != s {
			t.Fatalf("copy of %s with %d segments missing: verdict %+v", s, missing, v)
		}
		if v.Read != 40-missing {
			t.Fatalf("read %d positions, want %d", v.Read, 40-missing)
		}
	}
}

// A copy with more positions altered than the code corrects, or with
// nothing readable, is refused rather than pinned on a site.
func TestDecodeRefusesWhatItCannotTell(t *testing.T) {
	tab, sites := thousandSites(t)
	dec, _ := NewDecoder(tab)
	if v := dec.Decode(make([]Symbol, 40)); v.Site != "" && v.Distance > v.Radius {
		t.Fatalf("all-A copy: %+v", v)
	}
	none := make([]Symbol, 40)
	for i := range none {
		none[i] = Missing
	}
	if v := dec.Decode(none); v.Site != "" || !strings.Contains(v.Why, "no segment") {
		t.Fatalf("empty copy: %+v", v)
	}
	seq := copyOf(tab, sites[7], 40)
	for p := range 10 { // 10 flips: beyond the radius of 5
		seq[p] = 1 - seq[p]
	}
	if v := dec.Decode(seq); v.Site == sites[7] && v.Distance > v.Radius {
		t.Fatalf("named beyond the radius: %+v", v)
	}
}

// Two or three sites mixing their copies segment by segment: the decoder
// names a colluder, refuses, or (rarely, and this is the code's limit at 40
// segments) names an innocent site. The counts are logged for the docs;
// the seed is fixed, so the counts are too.
func TestCollusionFigures(t *testing.T) {
	tab, sites := thousandSites(t)
	dec, _ := NewDecoder(tab)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []int{2, 3} {
		var named, refused, framed int
		const trials = 300
		for range trials {
			gang := map[string]bool{}
			var seqs [][]Symbol
			for len(seqs) < c {
				s := sites[rng.IntN(len(sites))]
				if !gang[s] {
					gang[s] = true
					seqs = append(seqs, copyOf(tab, s, 40))
				}
			}
			mix := make([]Symbol, 40)
			for i := range mix {
				mix[i] = seqs[rng.IntN(c)][i]
			}
			v := dec.Decode(mix)
			switch {
			case v.Site == "":
				refused++
			case gang[v.Site]:
				named++
			default:
				framed++
			}
		}
		t.Logf("%d colluders mixing per segment, %d trials: colluder named %d, refused %d, innocent named %d", c, trials, named, refused, framed)
		if framed > trials/10 {
			t.Errorf("%d colluders: an innocent site was named in %d of %d trials", c, framed, trials)
		}
	}
}

func TestExtendKeepsCodewordsAndDistance(t *testing.T) {
	tab := &Table{Length: 40, MinDistance: 12, Sites: map[string]string{}}
	one, err := Extend(tab, []string{"a", "b", "c"}, "s")
	if err != nil {
		t.Fatal(err)
	}
	two, err := Extend(one, []string{"b", "d", "d"}, "s")
	if err != nil {
		t.Fatal(err)
	}
	for s, c := range one.Sites {
		if two.Sites[s] != c {
			t.Fatalf("site %s changed its codeword", s)
		}
	}
	if len(two.Sites) != 4 {
		t.Fatalf("%d sites, want 4", len(two.Sites))
	}
	if err := two.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := two.Marshal()
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
	bad := *two
	bad.Sites = map[string]string{"a": two.Sites["a"], "z": two.Sites["a"]}
	if err := bad.Validate(); err == nil {
		t.Fatal("a table with two equal codewords validated")
	}
	if _, err := Extend(&Table{Length: 8, MinDistance: 8, Sites: map[string]string{}}, []string{"a", "b", "c"}, "s"); err == nil {
		t.Fatal("three codewords of 8 bits at distance 8 were found")
	}
}

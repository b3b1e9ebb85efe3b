package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/sitecode"
)

// Two sites with opposite codewords over four 3-piece segments (pieces
// aligned to segments): each site wants only its variants, and the shard
// plan gives every piece to a member of a site that wants it, so each
// variant is fetched from the origin once, by the sites sharing it.
func TestVariantsShardPlanGivesPiecesOnlyToWantingSites(t *testing.T) {
	const pl = 16 << 10
	m := &catalog.Manifest{Name: "promo", Version: "1", PieceLength: pl, Watermark: &catalog.Watermark{Codes: "c"}}
	for _, v := range []string{"a", "b"} {
		for i := range 4 {
			m.Files = append(m.Files, catalog.ManifestFile{Path: fmt.Sprintf("variants/%s/seg%d.ts", v, i), Size: 3 * pl, SHA256: strings.Repeat(v, 1) + fmt.Sprint(i)})
		}
	}
	for i := range 4 {
		p := fmt.Sprintf("seg%d.ts", i)
		m.Watermark.Segments = append(m.Watermark.Segments, catalog.WatermarkSegment{Path: p, A: "variants/a/" + p, B: "variants/b/" + p})
	}
	table := &sitecode.Table{Length: 4, MinDistance: 4, Sites: map[string]string{"north": "0101", "south": "1010"}}
	north, err := newSiteVariants(m, table, "north")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSiteVariants(m, table, "east"); err == nil || !strings.Contains(err.Error(), "no codeword") {
		t.Fatalf("a site without a codeword: %v", err)
	}
	// north: A at 0 and 2, B at 1 and 3: pieces 0-2, 6-8 (A) and 15-17, 21-23 (B).
	if got := fmt.Sprint(north.want.ToArray()); got != "[0 1 2 6 7 8 15 16 17 21 22 23]" {
		t.Fatalf("north wants %s", got)
	}
	site := map[[20]byte]string{{1}: siteKey("north", "eu"), {2}: siteKey("north", "eu"), {3}: siteKey("south", "eu")}
	siteOf := func(id [20]byte) (string, bool) { k, ok := site[id]; return k, ok }
	sp := newShardPlan([20]byte{9}, 24, [][20]byte{{1}, {2}, {3}}, siteOf, siteKey("north", "eu"), nil)
	sp.wants = north.siteWants
	for p := range 24 {
		o := sp.owner(p)
		wantNorth := north.want.Contains(uint32(p))
		if (site[o] == siteKey("north", "eu")) != wantNorth {
			t.Errorf("piece %d goes to %s; north wants it: %v", p, site[o], wantNorth)
		}
	}
	if !north.peerDone(siteKey("south", "eu"), north.pieces(north.skipFor(mustCode(t, "1010", 4)))) {
		t.Error("a south peer with all of south's pieces is not done")
	}
}

func mustCode(t *testing.T, s string, n int) sitecode.Code {
	c, err := sitecode.ParseCode(s, n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

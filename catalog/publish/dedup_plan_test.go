package publish

import (
	"math/rand/v2"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/delta"
)

// TestReusePlan: for random hints and minimum part sizes, the plan covers
// the file exactly, in order, every part but the last is at least the
// minimum, and each base part is the bytes the hints name.
func TestReusePlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		size := 1 + rng.Int64N(200)
		off := rng.Int64N(50) // the file's offset in the release
		minPart := 1 + rng.Int64N(40)
		// Random disjoint ranges over [0, off+size+20) in release offsets,
		// each mapping to base file "b" at a random offset.
		var hints delta.Hints
		hints.Base = "1"
		for pos := int64(0); pos < off+size+20; {
			pos += rng.Int64N(30)
			n := 1 + rng.Int64N(60)
			hints.Ranges = append(hints.Ranges, delta.Range{Off: pos, Len: n, BasePath: "b", BaseOff: rng.Int64N(100)})
			pos += n
		}
		r := &reuser{hints: &hints, basePath: "data/app/1/", baseSizes: map[string]int64{"b": 150}}
		f := catalog.ManifestFile{Path: "f", Size: size}
		parts := r.plan(f, off, minPart)
		if parts == nil {
			continue
		}
		var at int64
		for i, p := range parts {
			if p.Len <= 0 || (p.Len < minPart && i < len(parts)-1) {
				t.Fatalf("iter %d: part %d of %d has %d bytes (min %d): %+v", iter, i, len(parts), p.Len, minPart, parts)
			}
			if p.Src == "" {
				if p.Off != at {
					t.Fatalf("iter %d: local part %d at %d, want %d", iter, i, p.Off, at)
				}
			} else {
				// Each byte of a base part must be the base byte the hints name.
				for k := int64(0); k < p.Len; k += max(1, p.Len/4) {
					ro := off + at + k
					var found bool
					for _, h := range hints.Ranges {
						if ro >= h.Off && ro < h.Off+h.Len {
							found = h.BaseOff+(ro-h.Off) == p.Off+k && p.Src == "data/app/1/b"
						}
					}
					if !found {
						t.Fatalf("iter %d: base part %d byte %d is not what the hints say: %+v", iter, i, k, parts)
					}
				}
				if p.Off+p.Len > 150 {
					t.Fatalf("iter %d: base part %d runs past the base file", iter, i)
				}
			}
			at += p.Len
		}
		if at != size {
			t.Fatalf("iter %d: parts cover %d bytes of %d", iter, at, size)
		}
	}
}

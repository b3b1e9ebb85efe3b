package publish

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/internal/delta"
)

// Hints that would not fit keep the largest ranges and stay well inside
// the manifest's 16 MiB, whatever the release looks like.
func TestBoundHints(t *testing.T) {
	var rs []delta.Range
	long := strings.Repeat("&", 200) // JSON writes each as \u0026, the worst case
	for i := range 300_000 {
		p := "dir/" + long[:i%200] + "f"
		rs = append(rs, delta.Range{Off: int64(i) * 10, Len: int64(1 + i%7), BasePath: p, BaseOff: int64(i)})
	}
	kept := boundHints(rs)
	if len(kept) == 0 || len(kept) >= len(rs) {
		t.Fatalf("kept %d of %d ranges", len(kept), len(rs))
	}
	// As deep in the JSON as in a manifest.
	b, err := json.MarshalIndent(struct{ Delta delta.Hints }{delta.Hints{Base: "1", Ranges: kept}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kept %d of %d ranges: %d bytes of JSON", len(kept), len(rs), len(b))
	if len(b) > maxHintBytes {
		t.Errorf("bounded hints are %d bytes of JSON, more than %d", len(b), maxHintBytes)
	}
	h := delta.Hints{Base: "1", Ranges: kept}
	if err := h.Validate(3_000_000); err != nil {
		t.Fatal(err)
	}
	for _, r := range kept {
		if r.Len < 4 {
			t.Fatalf("kept a range of %d bytes while dropping longer ones", r.Len)
		}
	}
	small := rs[:10]
	if got := boundHints(small); len(got) != 10 {
		t.Errorf("small hints changed: %d ranges", len(got))
	}
}

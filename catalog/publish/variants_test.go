package publish_test

import (
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/sitecode"
)

// A watermarked publish: segments that differ become variants/a and
// variants/b files of one torrent, the playlist both directories hold
// alike stays shared, and the signed manifest lists the positions.
func TestPublishVariants(t *testing.T) {
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newPubCatalog(t, s)
	if _, err := catalog.ChangeCodeTable(t.Context(), s, c.keys, catalog.UpdateOptions{}, "stores", func(*sitecode.Table) (*sitecode.Table, error) {
		return sitecode.Extend(&sitecode.Table{Length: 8, MinDistance: 3, Sites: map[string]string{}}, []string{"s1", "s2"}, "t")
	}); err != nil {
		t.Fatal(err)
	}
	a := storetest.WritePayload(t, map[string]string{"index.m3u8": "#EXTM3U\nseg0.ts\nseg1.ts\n", "seg0.ts": "zero-A", "seg1.ts": "one-A"})
	b := storetest.WritePayload(t, map[string]string{"index.m3u8": "#EXTM3U\nseg0.ts\nseg1.ts\n", "seg0.ts": "zero-B", "seg1.ts": "one-B"})
	c.publish(t, publish.PublishOptions{Name: "promo", Version: "1", Paths: []string{a}, VariantB: b, Codes: "stores"})
	m, err := c.client(t).Manifest(t.Context(), "promo", "1")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "index.m3u8 variants/a/seg0.ts variants/a/seg1.ts variants/b/seg0.ts variants/b/seg1.ts" {
		t.Fatalf("files %s", got)
	}
	w := m.Watermark
	if w == nil || w.Codes != "stores" || len(w.Segments) != 2 || w.Segments[1] != (catalog.WatermarkSegment{Path: "seg1.ts", A: "variants/a/seg1.ts", B: "variants/b/seg1.ts"}) {
		t.Fatalf("watermark %+v", w)
	}

	bad := []struct {
		name string
		opts publish.PublishOptions
		want string
	}{
		{"no codes", publish.PublishOptions{Name: "x", Version: "1", Paths: []string{a}, VariantB: b}, "--codes"},
		{"B has an extra file", publish.PublishOptions{Name: "x", Version: "1", Paths: []string{a}, Codes: "stores",
			VariantB: storetest.WritePayload(t, map[string]string{"seg9.ts": "nine"})}, "lacks"},
		{"nothing differs", publish.PublishOptions{Name: "x", Version: "1", Paths: []string{a}, Codes: "stores", VariantB: a}, "no file differs"},
		{"two paths", publish.PublishOptions{Name: "x", Version: "1", Paths: []string{a, storetest.WritePayload(t, map[string]string{"other.txt": "x"})}, Codes: "stores", VariantB: b}, "exactly one directory"},
	}
	for _, tc := range bad {
		_, err := publish.Publish(t.Context(), s, c.keys, tc.opts)
		wantErrContains(t, tc.name, err, tc.want)
	}
}

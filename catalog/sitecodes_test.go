package catalog

import (
	"strings"
	"testing"
	"time"
)

func watermarkManifest() *Manifest {
	return &Manifest{Format: 1, Name: "promo", Version: "1", InfoHash: strings.Repeat("ab", 20), PieceLength: 16 << 10,
		Created: time.Unix(1, 0), TotalSize: 6,
		Files: []ManifestFile{
			{Path: "index.m3u8", Size: 2, SHA256: strings.Repeat("1", 64)},
			{Path: "variants/a/seg0.ts", Size: 2, SHA256: strings.Repeat("2", 64)},
			{Path: "variants/b/seg0.ts", Size: 2, SHA256: strings.Repeat("3", 64)},
		},
		Watermark: &Watermark{Codes: "stores", Segments: []WatermarkSegment{{Path: "seg0.ts", A: "variants/a/seg0.ts", B: "variants/b/seg0.ts"}}},
	}
}

func TestWatermarkValidate(t *testing.T) {
	if err := watermarkManifest().Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := MarshalManifest(watermarkManifest())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"variant missing", func(m *Manifest) { m.Watermark.Segments[0].B = "variants/b/nope.ts" }, "must both be files"},
		{"same bytes", func(m *Manifest) { m.Files[2].SHA256 = m.Files[1].SHA256 }, "same bytes"},
		{"path is a torrent file", func(m *Manifest) { m.Watermark.Segments[0].Path = "index.m3u8" }, "also a file"},
		{"path escapes", func(m *Manifest) { m.Watermark.Segments[0].Path = "../x.ts" }, "watermark"},
		{"path under variants", func(m *Manifest) { m.Watermark.Segments[0].Path = "variants/x.ts" }, "lies under"},
		{"A used twice", func(m *Manifest) {
			m.Watermark.Segments = append(m.Watermark.Segments, WatermarkSegment{Path: "seg1.ts", A: "variants/a/seg0.ts", B: "variants/b/seg0.ts"})
		}, "appears twice"},
		{"no table", func(m *Manifest) { m.Watermark.Codes = "" }, "code table"},
	} {
		m := watermarkManifest()
		tc.edit(m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	m1, m2 := watermarkManifest(), watermarkManifest()
	m2.Watermark.Codes = "other"
	if m1.SameContent(m2) {
		t.Error("manifests naming different code tables have the same content")
	}
}

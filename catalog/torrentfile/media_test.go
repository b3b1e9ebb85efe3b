package torrentfile_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
)

// mediaPair is a media manifest (16 KiB pieces: a 100-byte playlist, then
// segments of 20000 and 5 bytes on piece boundaries) and the info
// dictionary publish would write for it.
func mediaPair() (*metainfo.Info, *catalog.Manifest) {
	const pl = testPieceLength
	sum := strings.Repeat("ab", 32)
	m := &catalog.Manifest{
		Format: 1, Name: "show", Version: "1", InfoHash: strings.Repeat("01", 20), PieceLength: pl,
		Created: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), TotalSize: 100 + 20000 + 5,
		Files: []catalog.ManifestFile{{Path: "a.m3u8", Size: 100, SHA256: sum}, {Path: "s0.ts", Size: 20000, SHA256: sum}, {Path: "s1.ts", Size: 5, SHA256: sum}},
		Media: &catalog.Media{Format: catalog.MediaHLS, Playlists: []string{"a.m3u8"},
			Segments: []catalog.MediaSegment{{Path: "s0.ts", FirstPiece: 1, Pieces: 2}, {Path: "s1.ts", FirstPiece: 3, Pieces: 1}}},
	}
	pad := func(n int64) metainfo.FileInfo {
		return metainfo.FileInfo{Path: []string{".pad", itoa(n)}, Length: n, ExtendedFileAttrs: metainfo.ExtendedFileAttrs{Attr: "p"}}
	}
	info := &metainfo.Info{Name: "1", PieceLength: pl, Pieces: make([]byte, 20*4), Files: []metainfo.FileInfo{
		{Path: []string{"a.m3u8"}, Length: 100}, pad(pl - 100),
		{Path: []string{"s0.ts"}, Length: 20000}, pad(2*pl - 20000),
		{Path: []string{"s1.ts"}, Length: 5},
	}}
	return info, m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCheckMediaPads(t *testing.T) {
	info, m := mediaPair()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := torrentfile.Check(info, m); err != nil {
		t.Fatalf("good media torrent refused: %v", err)
	}
	for name, c := range map[string]struct {
		edit func(*metainfo.Info, *catalog.Manifest)
		want string
	}{
		"pads without media": {func(i *metainfo.Info, m *catalog.Manifest) { m.Media = nil }, "5 files, the manifest 3"},
		"missing pad": {func(i *metainfo.Info, m *catalog.Manifest) {
			i.Files = append(i.Files[:3], i.Files[4:]...)
		}, "a pad file is missing"},
		"pad renamed": {func(i *metainfo.Info, m *catalog.Manifest) { i.Files[1].Path = []string{".pad", "x"} }, "want .pad/"},
		"pad too long": {func(i *metainfo.Info, m *catalog.Manifest) {
			i.Files[1].Length++
			i.Files[1].Path[1] = itoa(i.Files[1].Length)
		}, "not where the media layout"},
		"extra pad":    {func(i *metainfo.Info, m *catalog.Manifest) { i.Files = append(i.Files, i.Files[1]) }, "not where the media layout"},
		"other attr":   {func(i *metainfo.Info, m *catalog.Manifest) { i.Files[1].Attr = "x" }, "attributes"},
		"pieces count": {func(i *metainfo.Info, m *catalog.Manifest) { i.Pieces = i.Pieces[:60] }, "piece hashes"},
	} {
		t.Run(name, func(t *testing.T) {
			info, m := mediaPair()
			c.edit(info, m)
			err := torrentfile.Check(info, m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

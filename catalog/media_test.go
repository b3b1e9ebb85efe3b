package catalog_test

import (
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
)

// mediaManifestSeed is a valid media manifest: 256 KiB pieces, a playlist
// of 100 bytes, then s0.ts on piece 1 (two pieces) and s1.ts on piece 3.
const mediaManifestSeed = `{
  "format": 1,
  "name": "show",
  "version": "1",
  "files": [
    {"path": "index.m3u8", "size": 100, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    {"path": "s0.ts", "size": 300000, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    {"path": "s1.ts", "size": 1000, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
  ],
  "total_size": 301100,
  "infohash": "0123456789abcdef0123456789abcdef01234567",
  "piece_length": 262144,
  "created": "2026-12-07T10:00:00Z",
  "media": {
    "format": "hls",
    "playlists": ["index.m3u8"],
    "segments": [
      {"path": "s0.ts", "first_piece": 1, "pieces": 2},
      {"path": "s1.ts", "first_piece": 3, "pieces": 1}
    ]
  }
}
`

func TestManifestMediaSection(t *testing.T) {
	m, err := catalog.ParseManifest([]byte(mediaManifestSeed))
	if err != nil {
		t.Fatal(err)
	}
	offsets, size := m.Layout()
	if offsets[0] != 0 || offsets[1] != 262144 || offsets[2] != 3*262144 || size != 3*262144+1000 {
		t.Fatalf("layout %v %d", offsets, size)
	}
	if got := m.PadSizes(); len(got) != 2 || got[0] != 262144-100 || got[1] != 4*262144-300000-262144-262144 {
		t.Fatalf("pad sizes %v", got)
	}
	if n, ok := catalog.ParsePadKey(catalog.PadKey("show", "1", 44)); !ok || n != 44 {
		t.Fatal("pad key does not round-trip")
	}
	for _, k := range []string{"data/show/1/.pad/0", "data/show/1/.pad/012", "data/show/1/x/.pad/1", "data/show/1/.pad/-1", "data/show/1/.pad/1a", "releases/show/1/.pad/1"} {
		if _, ok := catalog.ParsePadKey(k); ok {
			t.Errorf("%s taken for a pad key", k)
		}
	}
	edit := func(old, new string) string {
		if !strings.Contains(mediaManifestSeed, old) {
			t.Fatalf("seed edit: %q not in the seed", old)
		}
		return strings.Replace(mediaManifestSeed, old, new, 1)
	}
	for name, c := range map[string]struct{ body, want string }{
		"first piece":      {edit(`"first_piece": 3`, `"first_piece": 2`), "the layout gives 3+1"},
		"piece count":      {edit(`"first_piece": 1, "pieces": 2`, `"first_piece": 1, "pieces": 1`), "the layout gives 1+2"},
		"format":           {edit(`"format": "hls"`, `"format": "smooth"`), "not hls or dash"},
		"no playlists":     {edit(`"playlists": ["index.m3u8"]`, `"playlists": []`), "no playlists"},
		"playlist missing": {edit(`"playlists": ["index.m3u8"]`, `"playlists": ["master.m3u8"]`), "not a file of the release"},
		"segment missing":  {edit(`{"path": "s1.ts", "first_piece": 3`, `{"path": "s2.ts", "first_piece": 3`), "not a file of the release"},
		"both":             {edit(`"playlists": ["index.m3u8"]`, `"playlists": ["index.m3u8", "s0.ts"]`), "also listed"},
		"twice":            {edit(`{"path": "s1.ts", "first_piece": 3, "pieces": 1}`, `{"path": "s0.ts", "first_piece": 1, "pieces": 2}`), "also listed"},
		"order": {edit(`{"path": "s0.ts", "first_piece": 1, "pieces": 2},
      {"path": "s1.ts", "first_piece": 3, "pieces": 1}`, `{"path": "s1.ts", "first_piece": 3, "pieces": 1},
      {"path": "s0.ts", "first_piece": 1, "pieces": 2}`), "out of file order"},
		"no segments": {edit(`"segments": [`, `"segments": [], "x": [`), "unknown field"},
		"delta":       {edit(`"media": {`, `"delta": {"base": "0", "ranges": []}, "media": {`), "no delta hints"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := catalog.ParseManifest([]byte(c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

package publish_test

import (
	"crypto/sha1"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/testenv"
)

// cbrLadder is a small three-rendition ladder whose segments are large
// enough for pads under 1% with 16 KiB pieces: constant bitrates of 8, 4
// and 2 Mbit/s (x264 fills to the rate) at small frame sizes to encode fast.
var cbrLadder = []testenv.Rendition{
	{Name: "hi", Width: 640, Height: 360, VideoKbps: 8000},
	{Name: "mid", Width: 480, Height: 270, VideoKbps: 4000},
	{Name: "lo", Width: 320, Height: 180, VideoKbps: 2000},
}

// TestPublishMediaLayout publishes generated HLS (.ts and fMP4) and DASH
// streams with --media and checks the layout in the signed manifest and
// torrent: every segment starts on a piece boundary, pads sit in the
// torrent only, pieces hash the pads' zeros, and the pad share of the CBR
// ladder stays under 1%.
func TestPublishMediaLayout(t *testing.T) {
	cases := []struct {
		name   string
		format string
		gen    func(t testing.TB, dir string)
		// maxPad is the pad share the automatic piece length must meet.
		maxPad float64
	}{
		{"hls-ts-ladder", catalog.MediaHLS, func(t testing.TB, d string) {
			testenv.GenerateHLS(t, d, testenv.MediaOptions{Seconds: 10, CBR: true, Renditions: cbrLadder})
		}, 0.01},
		{"hls-fmp4", catalog.MediaHLS, func(t testing.TB, d string) {
			testenv.GenerateHLS(t, d, testenv.MediaOptions{Seconds: 6, FMP4: true, CBR: true, Renditions: cbrLadder[:1]})
		}, 1}, // three segments and a tiny init segment: only the layout is checked
		{"dash", catalog.MediaDASH, func(t testing.TB, d string) {
			testenv.GenerateDASH(t, d, testenv.MediaOptions{Seconds: 6, CBR: true, Renditions: cbrLadder[:2]})
		}, 1}, // small audio segments: only the layout is checked
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			c.gen(t, src)
			s, err := catalog.NewDirStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			pc := newPubCatalog(t, s)
			res := pc.publish(t, publish.PublishOptions{Name: "show", Version: "1", Paths: []string{src}, Media: true})
			if res.Media == nil || res.Media.Format != c.format || res.Media.Segments == 0 {
				t.Fatalf("media result %+v", res.Media)
			}
			t.Logf("%s: %d bytes, piece length %d, %s", c.name, res.TotalSize, res.PieceLength, res.Media)
			if res.Media.PadShare >= c.maxPad {
				t.Errorf("pad share %.4f, want < %.2f", res.Media.PadShare, c.maxPad)
			}
			cl := pc.client(t)
			m, err := cl.Manifest(t.Context(), "show", "1")
			if err != nil {
				t.Fatal(err)
			}
			if m.Media == nil || len(m.Media.Segments) != res.Media.Segments || m.Media.Playlists[0] != map[string]string{catalog.MediaHLS: "master.m3u8", catalog.MediaDASH: "manifest.mpd"}[c.format] {
				t.Fatalf("manifest media section %+v", m.Media)
			}
			for _, f := range m.Files {
				if strings.Contains(f.Path, ".pad") {
					t.Fatalf("manifest lists pad file %s", f.Path)
				}
			}
			tb, err := catalog.ReadAll(t.Context(), s, catalog.TorrentKey("show", "1"), catalog.MaxTorrentSize)
			if err != nil {
				t.Fatal(err)
			}
			tf, err := torrentfile.Parse(tb, m)
			if err != nil {
				t.Fatal(err)
			}
			// Walk the torrent: segments on piece boundaries, and SHA-1 of
			// the stream (payload from the catalog, zeros for pads) equal
			// to the piece hashes.
			segs := map[string]bool{}
			for _, sg := range m.Media.Segments {
				segs[sg.Path] = true
			}
			pl := tf.Info.PieceLength
			var stream []byte
			pads := 0
			for _, f := range tf.Info.Files {
				p := strings.Join(f.Path, "/")
				if f.Attr == "p" {
					pads++
					stream = append(stream, make([]byte, f.Length)...)
					continue
				}
				if segs[p] && int64(len(stream))%pl != 0 {
					t.Errorf("segment %s starts at %d, not on a piece boundary (%d)", p, len(stream), pl)
				}
				b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(p)))
				if err != nil {
					t.Fatal(err)
				}
				stream = append(stream, b...)
			}
			if pads != res.Media.PadFiles || pads == 0 {
				t.Errorf("torrent has %d pad files, publish reported %d", pads, res.Media.PadFiles)
			}
			for i := 0; i < tf.Info.NumPieces(); i++ {
				sum := sha1.Sum(stream[int64(i)*pl : min(int64(i+1)*pl, int64(len(stream)))])
				if want := tf.Info.Piece(i).V1Hash(); !want.Ok || want.Value != sum {
					t.Fatalf("piece %d hash differs from SHA-1 over payload and pad zeros", i)
				}
			}
			// The catalog holds no pad objects for a directory store: the
			// origin answers pad paths itself.
			if _, err := s.Stat(t.Context(), catalog.PadKey("show", "1", 1)); err == nil {
				t.Error("unexpected pad object")
			}
		})
	}
}

// TestPublishMediaRefusals: a reference that escapes the release, a
// missing segment and --media with delta hints are refused before
// anything is written.
func TestPublishMediaRefusals(t *testing.T) {
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pc := newPubCatalog(t, s)
	for name, c := range map[string]struct {
		files map[string]string
		base  string
		want  string
	}{
		"escape":  {map[string]string{"a.m3u8": "#EXTM3U\n#EXTINF:2,\n../../etc/passwd\n", "s.ts": "x"}, "", "leaves its directory"},
		"url":     {map[string]string{"a.m3u8": "#EXTM3U\n#EXTINF:2,\nhttp://evil/s.ts\n", "s.ts": "x"}, "", "URL"},
		"missing": {map[string]string{"a.m3u8": "#EXTM3U\n#EXTINF:2,\ns1.ts\n", "s.ts": "x"}, "", "not in the release"},
		"base":    {map[string]string{"a.m3u8": "#EXTM3U\n#EXTINF:2,\ns.ts\n", "s.ts": "x"}, "0.9", "delta hints"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for p, body := range c.files {
				if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := publish.Publish(t.Context(), pc.store, pc.keys, publish.PublishOptions{Name: "bad", Version: "1", Paths: []string{dir}, Media: true, Base: c.base})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	list, err := s.List(t.Context(), "data/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("refused publishes left %v", list)
	}
}

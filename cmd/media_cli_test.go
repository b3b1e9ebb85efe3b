package cmd

import (
	"encoding/json"
	"strings"
	"testing"
)

// publish --media lays a hand-made HLS stream out with pads, warns that
// its small segments cost more than 1% in pads, and catalog show prints
// the media section; a playlist naming a file outside the release is
// refused.
func TestCLIPublishMedia(t *testing.T) {
	cat, keys := initCatalog(t)
	seg := strings.Repeat("x", 40000)
	src := payload(t, map[string]string{
		"index.m3u8": "#EXTM3U\n#EXTINF:2,\ns0.ts\n#EXTINF:2,\ns1.ts\n#EXT-X-ENDLIST\n",
		"s0.ts":      seg, "s1.ts": seg + "y",
	})
	out, errOut, code := swarmship(t, "publish", src, "--catalog", cat, "--keys", keys, "--name", "show", "--version", "1", "--media")
	if code != 0 || !strings.Contains(out, "media: hls, 1 playlists, 2 segments aligned to pieces, 2 pad files") {
		t.Fatalf("publish --media: %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: segments are too small") {
		t.Errorf("no pad share warning for 40 kB segments:\n%s", errOut)
	}
	out, errOut, code = swarmship(t, "catalog", "show", "show@1", "--catalog", cat, "--keys", keys)
	if code != 0 || !strings.Contains(out, "media     hls: 1 playlists, 2 segments on piece boundaries") || !strings.Contains(out, "playlist  index.m3u8") {
		t.Fatalf("show: %d\n%s%s", code, out, errOut)
	}
	out, _, code = swarmship(t, "catalog", "show", "show@1", "--catalog", cat, "--keys", keys, "-o", "json")
	var shown struct {
		PieceLength int64 `json:"piece_length"`
		Media       struct {
			Segments []struct {
				Path       string `json:"path"`
				FirstPiece int    `json:"first_piece"`
			} `json:"segments"`
		} `json:"media"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || len(shown.Media.Segments) != 2 {
		t.Fatalf("show -o json: %v\n%s", err, out)
	}
	// index.m3u8 (short) then s0.ts from piece 1, s1.ts after s0's pieces.
	if s := shown.Media.Segments; s[0].FirstPiece != 1 || int64(s[1].FirstPiece) != 1+(40000+shown.PieceLength-1)/shown.PieceLength {
		t.Errorf("segments %+v with %d-byte pieces", s, shown.PieceLength)
	}
	bad := payload(t, map[string]string{"index.m3u8": "#EXTM3U\n#EXTINF:2,\n../secret.ts\n"})
	if _, errOut, code = swarmship(t, "publish", bad, "--catalog", cat, "--keys", keys, "--name", "show", "--version", "2", "--media"); code == 0 || !strings.Contains(errOut, "leaves its directory") {
		t.Fatalf("escaping playlist: %d %s", code, errOut)
	}
}

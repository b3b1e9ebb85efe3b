package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/cmd"
	"github.com/swarmship/swarmship/internal/sitecode"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// makeVariants renders one generated HLS stream twice with ffmpeg, with a
// small box drawn at two different places: the A and B variants of every
// segment (same names, same playlist, different bytes), as a watermark
// embedder would hand them over.
func makeVariants(t *testing.T, seconds int) (dirA, dirB string) {
	t.Helper()
	ff := testenv.RequireTool(t, "ffmpeg")
	base := t.TempDir()
	for _, v := range []struct{ dir, box string }{
		{"a", "drawbox=x=8:y=8:w=12:h=12:color=white@0.6:t=fill"},
		{"b", "drawbox=x=40:y=8:w=12:h=12:color=white@0.6:t=fill"},
	} {
		dir := filepath.Join(base, v.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin",
			"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=25:duration=%d", seconds),
			"-vf", v.box, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-threads", "1",
			"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
			"-hls_segment_filename", filepath.Join(dir, "seg%03d.ts"), filepath.Join(dir, "index.m3u8"))
		out, err := c.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	return filepath.Join(base, "a"), filepath.Join(base, "b")
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Three sites with different site codes: every agent ends with its site's
// own copy (each segment the variant its codeword picks, at the playlist's
// paths), never fetches the other variant's files, `swarmship trace` names
// the site from any agent's copy, and the origin sends each variant about
// once.
func TestWatermarkSitesGetTheirOwnCopy(t *testing.T) {
	dirA, dirB := makeVariants(t, 20)
	var perVariant [2]atomic.Int64
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i, v := range []string{"/variants/a/", "/variants/b/"} {
				if strings.HasPrefix(r.URL.Path, "/data/") && strings.Contains(r.URL.Path, v) {
					cw := &countingWriter{ResponseWriter: w, n: &perVariant[i]}
					next.ServeHTTP(cw, r)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	ctx := context.Background()
	sites := []string{"store-1", "store-2", "store-3"}
	table, err := catalog.ChangeCodeTable(ctx, sw.Store, sw.Keys, catalog.UpdateOptions{}, "stores", func(cur *sitecode.Table) (*sitecode.Table, error) {
		return sitecode.Extend(&sitecode.Table{Length: 20, MinDistance: 7, Sites: map[string]string{}}, sites, "e2e")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.PublishWith(ctx, catpublish.PublishOptions{Name: "promo", Version: "1", Paths: []string{dirA}, VariantB: dirB, Codes: "stores",
		Channels: []string{"signage"}, PieceLength: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	b, err := catalog.ReadAll(ctx, sw.Store, catalog.ManifestKey("promo", "1"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Watermark == nil || len(m.Watermark.Segments) < 12 {
		t.Fatalf("manifest watermark: %+v", m.Watermark)
	}
	sums := map[string]string{}
	var variantSize [2]int64
	for _, f := range m.Files {
		sums[f.Path] = f.SHA256
		switch {
		case strings.HasPrefix(f.Path, "variants/a/"):
			variantSize[0] += f.Size
		case strings.HasPrefix(f.Path, "variants/b/"):
			variantSize[1] += f.Size
		}
	}

	sub := agent.Subscription{Name: "promo", Channel: "signage"}
	var agents []*localswarm.RunningAgent
	siteOf := map[string]string{}
	for i, site := range []string{"store-1", "store-1", "store-2", "store-2", "store-3"} {
		name := fmt.Sprintf("wm-%d", i+1)
		cfg := sw.AgentConfig(name, site, "eu", sub)
		ra, err := sw.StartAgent(ctx, name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
		siteOf[name] = site
	}
	waitActive(t, "promo", "1", 120*time.Second, agents...)

	copies := map[string]string{} // site -> sequence
	for _, ra := range agents {
		site := siteOf[ra.Name]
		code, _ := sitecode.ParseCode(table.Sites[site], table.Length)
		cur := filepath.Join(ra.Config.CacheDir, "current", "promo")
		var seq strings.Builder
		for i, s := range m.Watermark.Segments {
			want, other := s.A, s.B
			if code.Bit(i%table.Length) == 1 {
				want, other = s.B, s.A
			}
			if got := sha256File(t, filepath.Join(cur, filepath.FromSlash(s.Path))); got != sums[want] {
				t.Errorf("%s (%s): %s is not variant %s", ra.Name, site, s.Path, want)
			}
			// The other variant's pieces were never fetched: only pieces
			// it shares with a wanted file were written (without pad
			// alignment a piece may straddle two segments), so the
			// pieces wholly inside it are absent or zeros on disk.
			checkNeverFetched(t, ra.Name, filepath.Join(cur, filepath.FromSlash(other)), m, other)
			seq.WriteString(strings.ToUpper(want[len("variants/") : len("variants/")+1]))
		}
		if got := sha256File(t, filepath.Join(cur, "index.m3u8")); got != sums["index.m3u8"] {
			t.Errorf("%s: playlist differs from the signed one", ra.Name)
		}
		if prev, ok := copies[site]; ok && prev != seq.String() {
			t.Errorf("two agents of %s hold different copies", site)
		}
		copies[site] = seq.String()
		// Bytes fetched: the site's variants, the playlist and at most the
		// pieces a wanted file shares with an unwanted one.
		rs := releaseStatus(ra, "promo", "1")
		fetched := rs.Downloaded.Peer + rs.Downloaded.Origin
		if rs.Completed != rs.Size || rs.Size >= m.TotalSize {
			t.Errorf("%s: completed %d of %d (torrent %d): size should be its variants' pieces", ra.Name, rs.Completed, rs.Size, m.TotalSize)
		}
		if limit := m.TotalSize/2 + 2*int64(len(m.Watermark.Segments)+1)*m.PieceLength; fetched > limit {
			t.Errorf("%s fetched %d bytes of a %d-byte torrent, more than its variants need (%d)", ra.Name, fetched, m.TotalSize, limit)
		}

		// trace names the site from the agent's copy.
		var out, errOut bytes.Buffer
		code2 := cmd.Run(ctx, []string{"trace", cur, "--release", "promo@1", "--catalog", sw.CatalogDir, "--root", sw.RootPath,
			"--state", t.TempDir(), "-o", "json"}, &out, &errOut)
		var res cmd.TraceResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || code2 != 0 {
			t.Fatalf("%s: trace exit %d: %v\n%s\n%s", ra.Name, code2, err, out.String(), errOut.String())
		}
		if res.Site != site {
			t.Errorf("%s: trace named %q, want %s (%+v)", ra.Name, res.Site, site, res)
		}
	}
	if len(copies) != 3 || copies["store-1"] == copies["store-2"] || copies["store-2"] == copies["store-3"] || copies["store-1"] == copies["store-3"] {
		t.Errorf("site copies are not unique: %v", copies)
	}
	for i, name := range []string{"A", "B"} {
		sent := perVariant[i].Load()
		c := float64(sent) / float64(variantSize[i])
		t.Logf("origin sent %d bytes of variant %s (%d bytes): %.3f copies", sent, name, variantSize[i], c)
		if c > 1.1 {
			t.Errorf("origin sent %.3f copies of variant %s, want <= 1.1", c, name)
		}
	}
}

// checkNeverFetched fails unless the pieces lying wholly inside file
// path of m are missing or zero in the agent's copy at p.
func checkNeverFetched(t *testing.T, agentName, p string, m *catalog.Manifest, path string) {
	t.Helper()
	var begin, size int64
	for _, f := range m.Files {
		if f.Path == path {
			size = f.Size
			break
		}
		begin += f.Size
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return // never created
	}
	pl := m.PieceLength
	first := (begin + pl - 1) / pl
	for piece := first; (piece+1)*pl <= begin+size; piece++ {
		lo, hi := piece*pl-begin, (piece+1)*pl-begin
		if lo >= int64(len(b)) {
			return
		}
		if !allZero(b[lo:min(hi, int64(len(b)))]) {
			t.Errorf("%s: piece %d lies inside %s, which its site does not want, yet it holds its bytes", agentName, piece, path)
			return
		}
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

//go:build unix

package agent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/delta"
	"github.com/swarmship/swarmship/internal/testenv"
)

const reusePiece = 64 << 10

type reuseFixture struct {
	a      *Agent
	m2     *catalog.Manifest
	info   *metainfo.Info
	ih     metainfo.Hash
	v1, v2 map[string][]byte
}

// testRelease writes files (in the order of names) as name@version held by
// the agent when held, and returns its manifest and torrent info.
func testRelease(t *testing.T, a *Agent, name, version string, names []string, files map[string][]byte, held bool) (*catalog.Manifest, *metainfo.Info) {
	t.Helper()
	m := &catalog.Manifest{Format: 1, Name: name, Version: version, PieceLength: reusePiece, Created: time.Now().UTC().Truncate(time.Second)}
	info := &metainfo.Info{Name: version, PieceLength: reusePiece}
	var all []byte
	for _, n := range names {
		b := files[n]
		sum := sha256.Sum256(b)
		m.Files = append(m.Files, catalog.ManifestFile{Path: n, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		info.Files = append(info.Files, metainfo.FileInfo{Path: []string{n}, Length: int64(len(b))})
		all = append(all, b...)
		if held {
			p := filepath.Join(a.cache.releaseDir(name, version), n)
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	for off := 0; off < len(all); off += reusePiece {
		s := sha1.Sum(all[off:min(off+reusePiece, len(all))])
		info.Pieces = append(info.Pieces, s[:]...)
	}
	m.TotalSize = int64(len(all))
	m.InfoHash = hex.EncodeToString(make([]byte, 20))
	if held {
		if err := writeFileAtomic(a.cache.manifestPath(name, version), mustMarshalManifest(m)); err != nil {
			t.Fatal(err)
		}
		if err := a.state.Put(&ReleaseState{Name: name, Version: version, Phase: PhaseActive, Size: m.TotalSize}); err != nil {
			t.Fatal(err)
		}
	}
	return m, info
}

// newReuseFixture: v1 holds a (200 KiB), b (130 KiB), c (90 KiB); v2 is
// a with 10 bytes changed at 100000, b renamed to b2, c removed, n new
// (5 KiB) in the middle. Hints map a's unchanged bytes onto v1's a.
func newReuseFixture(t *testing.T) *reuseFixture { return newReuseFixtureIn(t, t.TempDir()) }

// newReuseFixtureIn keeps the cache in dir and the databases elsewhere.
func newReuseFixtureIn(t *testing.T, dir string) *reuseFixture {
	dbDir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, _, err := openState(filepath.Join(dbDir, "agent.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	cdb, _, err := openCompletion(dbDir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); cdb.Close() })
	a := &Agent{log: log, state: st, complete: cdb, cache: releaseCache{dir: dir}}
	r := rand.NewChaCha8([32]byte{'r'})
	rb := func(n int) []byte { b := make([]byte, n); r.Read(b); return b }
	v1 := map[string][]byte{"a": rb(200 << 10), "b": rb(130 << 10), "c": rb(90 << 10)}
	a2 := bytes.Clone(v1["a"])
	copy(a2[100000:], rb(10))
	v2 := map[string][]byte{"a": a2, "n": rb(5 << 10), "b2": v1["b"]}
	testRelease(t, a, "app", "1.0", []string{"a", "b", "c"}, v1, true)
	m2, info := testRelease(t, a, "app", "2.0", []string{"a", "n", "b2"}, v2, false)
	m2.Delta = &delta.Hints{Base: "1.0", Ranges: []delta.Range{
		{Off: 0, Len: 100000, BasePath: "a", BaseOff: 0},
		{Off: 100010, Len: int64(len(a2)) - 100010, BasePath: "a", BaseOff: 100010},
	}}
	if err := m2.Delta.Validate(m2.TotalSize); err != nil {
		t.Fatal(err)
	}
	return &reuseFixture{a: a, m2: m2, info: info, v1: v1, v2: v2}
}

func (f *reuseFixture) complete(t *testing.T) (n int) {
	t.Helper()
	for i := range f.info.NumPieces() {
		c, err := f.a.complete.Get(metainfo.PieceKey{InfoHash: f.ih, Index: i})
		if err != nil {
			t.Fatal(err)
		}
		if c.Complete {
			n++
			// A piece recorded complete holds exactly its bytes.
			got := f.read(t, int64(i)*reusePiece, min(reusePiece, f.m2.TotalSize-int64(i)*reusePiece))
			if s := sha1.Sum(got); !bytes.Equal(s[:], f.info.Pieces[i*20:i*20+20]) {
				t.Fatalf("piece %d recorded complete but its bytes fail the hash", i)
			}
		}
	}
	return n
}

// read reads v2's payload at off from the new release's files.
func (f *reuseFixture) read(t *testing.T, off, n int64) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	var start int64
	for _, mf := range f.m2.Files {
		lo, hi := max(off, start), min(off+n, start+mf.Size)
		if lo < hi {
			b, _ := os.ReadFile(filepath.Join(f.a.cache.releaseDir("app", "2.0"), mf.Path))
			if int64(len(b)) < hi-start {
				b = append(b, make([]byte, hi-start-int64(len(b)))...)
			}
			out = append(out, b[lo-start:hi-start]...)
		}
		start += mf.Size
	}
	return out
}

func TestReuseFillsFromHeldRelease(t *testing.T) {
	f := newReuseFixture(t)
	res, err := f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih)
	if err != nil {
		t.Fatal(err)
	}
	np := f.info.NumPieces()
	// The pieces holding the edit (piece 1) and the new file n (piece 3)
	// are partly held; all others are complete.
	if got := f.complete(t); got != np-2 || res.pieces != np-2 || res.cloned != 1 || res.failed != 0 {
		t.Fatalf("complete %d of %d, result %+v; want all but 2, b2 cloned", got, np, res)
	}
	if len(res.partial) != 2 || res.partial[1] == nil || res.partial[3] == nil {
		t.Errorf("partly held pieces %v, want 1 and 3", res.partial)
	}
	// b2 is a copy of v1's b, not a link to it.
	s1, _ := os.Stat(filepath.Join(f.a.cache.releaseDir("app", "1.0"), "b"))
	s2, _ := os.Stat(filepath.Join(f.a.cache.releaseDir("app", "2.0"), "b2"))
	if os.SameFile(s1, s2) || s2.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Error("b2 is a hard link to the held b")
	}
}

// A held file changed since it was verified never leaks: its pieces fail
// the hash and are not recorded.
func TestReuseRefusesDamagedBase(t *testing.T) {
	f := newReuseFixture(t)
	for _, c := range []struct {
		file string
		at   int64
	}{{"a", 10}, {"b", 70000}} {
		p := filepath.Join(f.a.cache.releaseDir("app", "1.0"), c.file)
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt([]byte{f.v1[c.file][c.at] ^ 1}, c.at)
		fh.Close()
	}
	res, err := f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih)
	if err != nil {
		t.Fatal(err)
	}
	np := f.info.NumPieces()
	if got := f.complete(t); got != np-4 || res.failed != 2 {
		t.Fatalf("complete %d of %d, result %+v; want the 2 damaged pieces and 2 partly held left", got, np, res)
	}
}

// Killed midway (here: stopped after a few pieces), a second pass
// completes the rest; a half-written clone left behind is assembled piece
// by piece, not trusted.
func TestReuseContinuesAfterInterruption(t *testing.T) {
	f := newReuseFixture(t)
	// A clone killed midway: b2 exists with half its bytes.
	dst := filepath.Join(f.a.cache.releaseDir("app", "2.0"), "b2")
	os.MkdirAll(filepath.Dir(dst), 0o750)
	if err := os.WriteFile(dst, f.v1["b"][:50000], 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.a.reuseLocal(ctx, f.m2, f.info, f.ih); err == nil {
		t.Fatal("a cancelled pass reported success")
	}
	if got := f.complete(t); got != 0 {
		t.Fatalf("%d pieces complete after a pass that stopped at once", got)
	}
	res, err := f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih)
	if err != nil {
		t.Fatal(err)
	}
	np := f.info.NumPieces()
	if got := f.complete(t); got != np-2 || res.cloned != 0 {
		t.Fatalf("complete %d of %d after the second pass, result %+v", got, np, res)
	}
	// A third pass finds nothing left to do.
	res, err = f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih)
	if err != nil || res.pieces != 0 {
		t.Fatalf("third pass: %+v, %v", res, err)
	}
	// b2 from piece 4 on (piece 3 is partly held: the offloader's).
	b, _ := os.ReadFile(dst)
	const from = 4*reusePiece - (200<<10 + 5<<10)
	if len(b) != len(f.v2["b2"]) || !bytes.Equal(b[from:], f.v2["b2"][from:]) {
		t.Error("b2 does not hold v1's b after reuse")
	}
}

// Out of room midway: reuse stops with the disk-full error (which pauses
// the release like a failed download write), records only pieces it
// wrote whole, and finishes once there is room again.
func TestReuseDiskFullStopsAndResumes(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(1<<20), "tmpfs", dir).CombinedOutput(); err != nil {
		if testenv.InCI() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	f := newReuseFixtureIn(t, dir)
	// Leave about 100 KiB: v2 needs 335 KiB.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(fs.Bavail)*int64(fs.Bsize)-100<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih)
	if !isNoSpace(err) {
		t.Fatalf("reuse on a full disk: %v, want a disk-full error", err)
	}
	f.complete(t) // whatever is recorded holds its bytes
	os.Remove(filler)
	if _, err := f.a.reuseLocal(context.Background(), f.m2, f.info, f.ih); err != nil {
		t.Fatal(err)
	}
	if got, np := f.complete(t), f.info.NumPieces(); got != np-2 {
		t.Fatalf("complete %d of %d once there is room, want all but 2", got, np)
	}
}

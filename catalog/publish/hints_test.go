package publish_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/delta"
)

// deltaPair builds a base release and a next one from it: one file changed
// in place, one with bytes inserted in the middle, one renamed, one added,
// one removed, and unchanged ones (one smaller than a matcher block). It
// returns both payloads and the bytes of the next release that are new.
func deltaPair(t *testing.T) (v1, v2 map[string]string, newBytes map[string]int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(17, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	changed := random(200 << 10)
	big := random(1 << 20)
	renamed := random(150 << 10)
	v1 = map[string]string{
		"changed.bin":  string(changed),
		"big.bin":      string(big),
		"old-name.bin": string(renamed),
		"removed.bin":  string(random(100 << 10)),
		"same/a.txt":   string(random(300 << 10)),
		"tiny":         string(random(100)),
	}
	edited := bytes.Clone(changed)
	for i := 100000; i < 100050; i++ {
		edited[i] ^= 0xff
	}
	ins := random(64 << 10)
	// Its ends differ from their neighbours, so exactly the inserted bytes are new.
	ins[0], ins[len(ins)-1] = ^big[512<<10], ^big[512<<10-1]
	v2 = map[string]string{
		"changed.bin":  string(edited),
		"big.bin":      string(big[:512<<10]) + string(ins) + string(big[512<<10:]),
		"new-name.bin": string(renamed),
		"same/a.txt":   v1["same/a.txt"],
		"tiny":         v1["tiny"],
		"added.bin":    string(random(80 << 10)),
	}
	return v1, v2, map[string]int64{"changed.bin": 50, "big.bin": 64 << 10, "added.bin": 80 << 10}
}

func TestPublishDeltaHints(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		ctx := t.Context()
		c := newPubCatalog(t, s)
		v1, v2, wantNew := deltaPair(t)
		dir1 := storetest.WritePayload(t, v1)
		first := c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{dir1}, Channels: []string{"stable"}, PieceLength: 256 << 10})
		if first.Delta == nil || first.Delta.Base != "" || !strings.Contains(first.Delta.Note, "first release") {
			t.Errorf("first release: delta result %+v, want a note saying there is no base", first.Delta)
		}
		// The default base is what the channel points at.
		res := c.publish(t, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{storetest.WritePayload(t, v2)}, Channels: []string{"stable"}, PieceLength: 256 << 10})
		cl := c.client(t)
		if m, err := cl.Manifest(ctx, "app", "1.0"); err != nil || m.Delta != nil {
			t.Fatalf("first release: manifest %v, delta %+v", err, m.Delta)
		}
		m, err := cl.Manifest(ctx, "app", "2.0")
		if err != nil {
			t.Fatal(err)
		}
		if m.Delta == nil || m.Delta.Base != "1.0" {
			t.Fatalf("signed manifest has no hints against 1.0: %+v", m.Delta)
		}
		// Every hinted byte really is the base's, and the hints cover
		// exactly the bytes that did not change.
		var off, wantHinted int64
		for _, f := range m.Files {
			got := m.Delta.Covered(off, f.Size)
			if want := f.Size - wantNew[f.Path]; got != want {
				t.Errorf("%s: hints cover %d of %d bytes, want %d", f.Path, got, f.Size, want)
			}
			wantHinted += f.Size - wantNew[f.Path]
			off += f.Size
		}
		payload := ""
		for _, f := range m.Files {
			payload += v2[f.Path]
		}
		for _, r := range m.Delta.Ranges {
			if payload[r.Off:r.Off+r.Len] != v1[r.BasePath][r.BaseOff:r.BaseOff+r.Len] {
				t.Errorf("range %+v: bytes differ from the base", r)
			}
			if r.BasePath == "removed.bin" {
				t.Errorf("range %+v points at a file the new release does not share", r)
			}
		}
		if n := len(m.Delta.Ranges); n > 8 {
			t.Errorf("%d ranges; want one per unchanged region", n)
		}
		d := res.Delta
		if d == nil || d.Base != "1.0" || d.HintedBytes != wantHinted || d.NewBytes != m.TotalSize-wantHinted {
			t.Errorf("publish result delta %+v, want %d hinted bytes", d, wantHinted)
		}
		// One read of the base, plus at most a block per edge of each
		// changed region (3 regions here, two edges each).
		if d != nil && d.BaseBytesRead > d.BaseSize+6*int64(d.BlockSize) {
			t.Errorf("read %d bytes of a %d-byte base (block %d)", d.BaseBytesRead, d.BaseSize, d.BlockSize)
		}
		// Matching rides on the hashing pass: only the edges are read again.
		if d != nil && d.NewBytesReread > 6*int64(d.BlockSize) {
			t.Errorf("read %d bytes of the new files again (block %d)", d.NewBytesReread, d.BlockSize)
		}
		if d != nil {
			t.Logf("base read %.4fx its size; %d of %d bytes hinted in %d ranges", float64(d.BaseBytesRead)/float64(d.BaseSize), d.HintedBytes, m.TotalSize, d.Ranges)
		}

		// Publishing 2.0 again reads no base: the signed hints stand.
		again := c.publish(t, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{storetest.WritePayload(t, v2)}, Channels: []string{"stable"}, PieceLength: 256 << 10})
		if !again.AlreadyPublished || again.Delta == nil || again.Delta.BaseBytesRead != 0 || !strings.Contains(again.Delta.Note, "already signed") {
			t.Errorf("publishing again: already %v, delta %+v", again.AlreadyPublished, again.Delta)
		}
		if m2, err := c.client(t).Manifest(ctx, "app", "2.0"); err != nil || m2.Delta == nil || !equalRanges(m2.Delta.Ranges, m.Delta.Ranges) {
			t.Errorf("publishing again changed the signed hints: %v", err)
		}

		// --base-dir gives the same hints from local files.
		res3 := c.publish(t, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{storetest.WritePayload(t, v2)}, Base: "1.0", BaseDir: dir1, PieceLength: 256 << 10})
		m3, err := c.client(t).Manifest(ctx, "app", "3.0")
		if err != nil {
			t.Fatal(err)
		}
		if m3.Delta == nil || !equalRanges(m3.Delta.Ranges, m.Delta.Ranges) || res3.Delta.HintedBytes != wantHinted {
			t.Errorf("--base-dir hints differ from the catalog's:\n%+v\nwant\n%+v", m3.Delta, m.Delta)
		}
	})
}

func equalRanges(a, b []delta.Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPublishDeltaBaseOptions(t *testing.T) {
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newPubCatalog(t, s)
	v1, v2, _ := deltaPair(t)
	dir1, dir2 := storetest.WritePayload(t, v1), storetest.WritePayload(t, v2)
	c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{dir1}})

	// Without a channel there is no default base, and publish works as before.
	res := c.publish(t, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{dir2}})
	if res.Delta == nil || res.Delta.Base != "" || !strings.Contains(res.Delta.Note, "no channel") {
		t.Errorf("no channel: delta %+v", res.Delta)
	}
	// --base none: no hints at all.
	res = c.publish(t, publish.PublishOptions{Name: "app", Version: "2.1", Paths: []string{dir2}, Base: publish.BaseNone})
	if res.Delta != nil {
		t.Errorf("--base none: delta %+v", res.Delta)
	}
	for _, v := range []string{"2.0", "2.1"} {
		if m, err := c.client(t).Manifest(t.Context(), "app", v); err != nil || m.Delta != nil {
			t.Errorf("%s: manifest %v, delta %+v", v, err, m)
		}
	}

	_, err = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{dir2}, BaseDir: dir1})
	wantErrContains(t, "base dir without a base", err, "name one with --base")
	_, err = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{dir2}, Base: "0.9"})
	wantErrContains(t, "missing base", err, "not in the catalog")
	_, err = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{dir2}, Base: "3.0"})
	wantErrContains(t, "own base", err, "own base")
	// A --base-dir that is not the signed base is refused: hints must
	// point at the bytes agents hold.
	if err := os.WriteFile(filepath.Join(dir1, "tiny"), []byte("not the base"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{dir2}, Base: "1.0", BaseDir: dir1})
	wantErrContains(t, "modified base dir", err, "differs from the signed base")

	// A default base (the channel's) that cannot be read does not stop the
	// release: it goes out without hints, saying why. Named, it does.
	c.publish(t, publish.PublishOptions{Name: "app", Version: "4.0", Paths: []string{dir2}, Channels: []string{"stable"}})
	if err := s.Delete(t.Context(), catalog.DataPrefix("app", "4.0")+"tiny"); err != nil {
		t.Fatal(err)
	}
	res = c.publish(t, publish.PublishOptions{Name: "app", Version: "5.0", Paths: []string{dir2}, Channels: []string{"stable"}})
	if res.Delta == nil || res.Delta.Base != "" || !strings.Contains(res.Delta.Note, "reading app@4.0 failed") {
		t.Errorf("unreadable default base: delta %+v", res.Delta)
	}
	_, err = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "5.1", Paths: []string{dir2}, Base: "4.0"})
	wantErrContains(t, "unreadable named base", err, "app@4.0")
}

package btclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

type testFile struct {
	path string // slash-separated, inside the torrent
	size int
}

// buildInfo writes random files under src/name and returns their info
// (real SHA-1 piece hashes) and the torrent's bytes in order.
func buildInfo(t testing.TB, name string, pieceLength int64, files []testFile) (*metainfo.Info, []byte) {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	info := &metainfo.Info{Name: name, PieceLength: pieceLength}
	var all []byte
	for _, f := range files {
		b := make([]byte, f.size)
		rand.Read(b)
		all = append(all, b...)
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		info.Files = append(info.Files, metainfo.FileInfo{Path: strings.Split(f.path, "/"), Length: int64(f.size)})
	}
	if err := info.GeneratePieces(func(fi metainfo.FileInfo) (io.ReadCloser, error) {
		return os.Open(filepath.Join(append([]string{root}, fi.Path...)...))
	}); err != nil {
		t.Fatal(err)
	}
	return info, all
}

func openTorrent(t *testing.T, dir string, info *metainfo.Info, pc storage.PieceCompletion) (storage.ClientImplCloser, storage.TorrentImpl) {
	t.Helper()
	cl := NewFileStorage(dir, pc)
	ti, err := cl.OpenTorrent(context.Background(), info, metainfo.HashBytes([]byte(info.Name)))
	if err != nil {
		t.Fatal(err)
	}
	return cl, ti
}

// writeAll writes the torrent's bytes piece by piece in blocks of block
// bytes, as peers would.
func writeAll(t *testing.T, ti storage.TorrentImpl, info *metainfo.Info, data []byte, block int) {
	t.Helper()
	for i := range info.NumPieces() {
		mp := info.Piece(i)
		p := ti.Piece(mp)
		for off := int64(0); off < mp.Length(); off += int64(block) {
			end := min(off+int64(block), mp.Length())
			n, err := p.WriteAt(data[mp.Offset()+off:mp.Offset()+end], off)
			if err != nil || int64(n) != end-off {
				t.Fatalf("piece %d: WriteAt(%d..%d) = %d, %v", i, off, end, n, err)
			}
		}
	}
}

func checkPieces(t *testing.T, ti storage.TorrentImpl, info *metainfo.Info, data []byte) {
	t.Helper()
	for i := range info.NumPieces() {
		mp := info.Piece(i)
		p := ti.Piece(mp)
		want := data[mp.Offset() : mp.Offset()+mp.Length()]
		got := make([]byte, mp.Length())
		if n, err := p.ReadAt(got, 0); err != nil || n != len(got) || !bytes.Equal(got, want) {
			t.Fatalf("piece %d: ReadAt = %d, %v; equal %v", i, n, err, bytes.Equal(got, want))
		}
		var buf bytes.Buffer
		if n, err := p.(io.WriterTo).WriteTo(&buf); err != nil || n != mp.Length() || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("piece %d: WriteTo = %d, %v", i, n, err)
		}
		// A read running past the piece's end stops there with io.EOF.
		if mp.Length() < 3 {
			continue
		}
		tail := make([]byte, 8)
		n, err := p.ReadAt(tail, mp.Length()-3)
		if n != 3 || err != io.EOF || !bytes.Equal(tail[:3], want[len(want)-3:]) {
			t.Fatalf("piece %d: ReadAt over the end = %d, %v", i, n, err)
		}
	}
}

func TestFileStorageLayout(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pieceLength int64
		files       []testFile
		block       int
	}{
		{"one file", 16, []testFile{{"a.bin", 100}}, 16},
		{"empty file in the middle", 16, []testFile{{"a", 10}, {"e1", 0}, {"sub/b", 25}, {"e2", 0}, {"sub/deeper/c", 7}}, 5},
		{"empty files at both ends", 8, []testFile{{"e0", 0}, {"a", 9}, {"b", 9}, {"e9", 0}}, 3},
		{"piece spans many small files", 64, []testFile{{"1", 3}, {"2", 1}, {"3", 0}, {"4", 30}, {"5", 2}, {"6", 50}, {"7", 1}}, 16},
		{"file ends on a piece boundary", 16, []testFile{{"a", 32}, {"b", 16}, {"c", 5}}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, data := buildInfo(t, "v1", tc.pieceLength, tc.files)
			dir := t.TempDir()
			cl, ti := openTorrent(t, dir, info, storage.NewMapPieceCompletion())
			defer cl.Close()
			// Empty files exist as soon as the torrent is opened.
			for _, f := range tc.files {
				if f.size == 0 {
					if st, err := os.Stat(filepath.Join(dir, "v1", f.path)); err != nil || st.Size() != 0 {
						t.Fatalf("empty file %s: %v", f.path, err)
					}
				}
			}
			writeAll(t, ti, info, data, tc.block)
			checkPieces(t, ti, info, data)
			// Each file holds exactly its own bytes, at dir/<name>/<path>.
			off := 0
			for _, f := range tc.files {
				got, err := os.ReadFile(filepath.Join(dir, "v1", filepath.FromSlash(f.path)))
				if err != nil || !bytes.Equal(got, data[off:off+f.size]) {
					t.Fatalf("file %s: %v, equal %v", f.path, err, bytes.Equal(got, data[off:off+f.size]))
				}
				off += f.size
			}
			if err := ti.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFileStorageSingleFileTorrent(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 70)
	rand.Read(data)
	p := filepath.Join(src, "single.bin")
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	info := &metainfo.Info{PieceLength: 32}
	if err := info.BuildFromFilePath(p); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cl, ti := openTorrent(t, dir, info, nil)
	defer cl.Close()
	writeAll(t, ti, info, data, 7)
	checkPieces(t, ti, info, data)
	if got, err := os.ReadFile(filepath.Join(dir, "single.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("single-file torrent not at dir/<name>: %v", err)
	}
}

func TestFileStorageMissingData(t *testing.T) {
	info, data := buildInfo(t, "v1", 16, []testFile{{"a", 10}, {"e", 0}, {"b", 30}})
	for _, tc := range []struct {
		name    string
		prepare func(dir string) // what is on disk
		piece   int
		wantN   int
	}{
		{"nothing written", func(string) {}, 0, 0},
		{"second file missing", func(dir string) {
			os.WriteFile(filepath.Join(dir, "v1", "a"), data[:10], 0o640)
		}, 0, 10},
		{"second file short", func(dir string) {
			os.WriteFile(filepath.Join(dir, "v1", "a"), data[:10], 0o640)
			os.WriteFile(filepath.Join(dir, "v1", "b"), data[10:13], 0o640)
		}, 0, 13},
		{"last piece beyond a short file", func(dir string) {
			os.WriteFile(filepath.Join(dir, "v1", "b"), data[10:30], 0o640)
		}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cl, ti := openTorrent(t, dir, info, nil)
			defer cl.Close()
			tc.prepare(dir)
			mp := info.Piece(tc.piece)
			p := ti.Piece(mp)
			buf := make([]byte, mp.Length())
			n, err := p.ReadAt(buf, 0)
			if n != tc.wantN || err != io.EOF {
				t.Fatalf("ReadAt = %d, %v; want %d, io.EOF", n, err, tc.wantN)
			}
			if !bytes.Equal(buf[:n], data[mp.Offset():mp.Offset()+int64(n)]) {
				t.Fatal("ReadAt returned wrong bytes")
			}
			var w bytes.Buffer
			wn, err := p.(io.WriterTo).WriteTo(&w)
			if wn != int64(tc.wantN) || err != io.EOF {
				t.Fatalf("WriteTo = %d, %v; want %d, io.EOF", wn, err, tc.wantN)
			}
			// Nothing was created by reading.
			if _, err := os.Stat(filepath.Join(dir, "v1", "b")); tc.name == "nothing written" && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a read created a file: %v", err)
			}
		})
	}
}

func TestFileStorageRefusesUnsafePaths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tname string
		path  []string
	}{
		{"dot-dot component", "v1", []string{"..", "x"}},
		{"dot-dot deep", "v1", []string{"a", "..", "..", "x"}},
		{"slash in component", "v1", []string{"a/../../x"}},
		{"absolute component", "v1", []string{"/etc/passwd"}},
		{"backslash", "v1", []string{`..\x`}},
		{"empty component", "v1", []string{"a", "", "b"}},
		{"dot component", "v1", []string{"."}},
		{"nul", "v1", []string{"a\x00b"}},
		{"dot-dot name", "..", []string{"x"}},
		{"name with slash", "../v1", []string{"x"}},
		{"empty name", "", []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "store")
			info := &metainfo.Info{Name: tc.tname, PieceLength: 16, Pieces: make([]byte, 20),
				Files: []metainfo.FileInfo{{Path: []string{"ok"}, Length: 0}, {Path: tc.path, Length: 0}}}
			cl := NewFileStorage(dir, nil)
			defer cl.Close()
			if _, err := cl.OpenTorrent(context.Background(), info, metainfo.Hash{}); err == nil {
				t.Fatal("OpenTorrent accepted an unsafe path")
			}
			// Nothing was created outside the storage directory.
			ents, _ := os.ReadDir(base)
			for _, e := range ents {
				if e.Name() != "store" {
					t.Fatalf("created %s outside the storage directory", e.Name())
				}
			}
		})
	}
	t.Run("duplicate path", func(t *testing.T) {
		info := &metainfo.Info{Name: "v1", PieceLength: 16, Pieces: make([]byte, 20),
			Files: []metainfo.FileInfo{{Path: []string{"a"}, Length: 3}, {Path: []string{"a"}, Length: 3}}}
		cl := NewFileStorage(t.TempDir(), nil)
		defer cl.Close()
		if _, err := cl.OpenTorrent(context.Background(), info, metainfo.Hash{}); err == nil {
			t.Fatal("OpenTorrent accepted two files at one path")
		}
	})
}

func TestFileStorageCompletionPersists(t *testing.T) {
	info, data := buildInfo(t, "v1", 16, []testFile{{"a", 20}, {"e", 0}, {"b", 20}})
	dir, stateDir := t.TempDir(), t.TempDir()
	pc, err := storage.NewBoltPieceCompletion(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	cl, ti := openTorrent(t, dir, info, pc)
	writeAll(t, ti, info, data, 16)
	for i := range info.NumPieces() {
		p := ti.Piece(info.Piece(i))
		if c := p.Completion(); c.Ok {
			t.Fatalf("piece %d: completion %+v before MarkComplete", i, c)
		}
		if i != 1 {
			if err := p.MarkComplete(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ti.Piece(info.Piece(1)).MarkNotComplete(); err != nil {
		t.Fatal(err)
	}
	ti.Close()
	cl.Close() // closes pc

	// Reopened: the completion comes back from the database.
	pc, err = storage.NewBoltPieceCompletion(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	cl, ti = openTorrent(t, dir, info, pc)
	defer cl.Close()
	for i, want := range []bool{true, false, true} {
		if c := ti.Piece(info.Piece(i)).Completion(); !c.Ok || c.Complete != want || c.Err != nil {
			t.Fatalf("piece %d: completion %+v, want complete=%v", i, c, want)
		}
	}
	checkPieces(t, ti, info, data)

	// A piece recorded complete whose file shrank is incomplete, and the
	// store says so from then on.
	if err := os.Truncate(filepath.Join(dir, "v1", "b"), 5); err != nil {
		t.Fatal(err)
	}
	if c := ti.Piece(info.Piece(2)).Completion(); !c.Ok || c.Complete {
		t.Fatalf("piece 2 with a short file: %+v", c)
	}
	if c, _ := pc.Get(metainfo.PieceKey{InfoHash: metainfo.HashBytes([]byte("v1")), Index: 2}); !c.Ok || c.Complete {
		t.Fatalf("piece 2 still recorded complete: %+v", c)
	}
	// Piece 0 lies in the intact file a only.
	if c := ti.Piece(info.Piece(0)).Completion(); !c.Complete {
		t.Fatalf("piece 0: %+v", c)
	}
	// A deleted file: incomplete too.
	os.Remove(filepath.Join(dir, "v1", "a"))
	if c := ti.Piece(info.Piece(0)).Completion(); !c.Ok || c.Complete {
		t.Fatalf("piece 0 with its file deleted: %+v", c)
	}
}

func TestFileStorageReopenAfterClose(t *testing.T) {
	info, data := buildInfo(t, "v1", 16, []testFile{{"a", 33}, {"e", 0}, {"b", 40}})
	dir := t.TempDir()
	cl, ti := openTorrent(t, dir, info, nil)
	half := info.NumPieces() / 2
	for i := range half {
		mp := info.Piece(i)
		if _, err := ti.Piece(mp).WriteAt(data[mp.Offset():mp.Offset()+mp.Length()], 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := ti.Close(); err != nil {
		t.Fatal(err)
	}
	// After Close, hashing and a peer's read fail (not io.EOF, which
	// would mark pieces lost; never zeros, which a peer would take for a
	// bad block: see filePiece.ReadAt).
	p0 := ti.Piece(info.Piece(0))
	if _, err := p0.(io.WriterTo).WriteTo(io.Discard); err == nil || err == io.EOF {
		t.Fatalf("hashing after Close: %v", err)
	}
	if n, err := p0.ReadAt([]byte{1, 2, 3, 4}, 0); err == nil || err == io.EOF {
		t.Fatalf("peer read after Close: %d, %v", n, err)
	}
	cl.Close()

	cl, ti = openTorrent(t, dir, info, nil)
	defer cl.Close()
	for i := half; i < info.NumPieces(); i++ {
		mp := info.Piece(i)
		if _, err := ti.Piece(mp).WriteAt(data[mp.Offset():mp.Offset()+mp.Length()], 0); err != nil {
			t.Fatal(err)
		}
	}
	checkPieces(t, ti, info, data)
}

func TestFileStorageReadOnlyThenWrite(t *testing.T) {
	// A file first opened for reading (seeding after a restart) is
	// reopened for writing when a piece must be downloaded again.
	info, data := buildInfo(t, "v1", 16, []testFile{{"a", 32}})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "v1"), 0o750)
	os.WriteFile(filepath.Join(dir, "v1", "a"), data, 0o640)
	cl, ti := openTorrent(t, dir, info, nil)
	defer cl.Close()
	checkPieces(t, ti, info, data)
	fresh := bytes.Repeat([]byte{7}, 16)
	if _, err := ti.Piece(info.Piece(1)).WriteAt(fresh, 0); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "v1", "a"))
	if !bytes.Equal(got[16:], fresh) || !bytes.Equal(got[:16], data[:16]) {
		t.Fatal("write after read-only open went wrong")
	}
}

func TestFileStorageBoundsOpenFiles(t *testing.T) {
	var files []testFile
	for i := range 3 * maxOpenFiles {
		files = append(files, testFile{fmt.Sprintf("d%d/f%03d", i%7, i), 5 + i%11})
	}
	info, data := buildInfo(t, "many", 64, files)
	dir := t.TempDir()
	cl, ti := openTorrent(t, dir, info, nil)
	defer cl.Close()
	// Concurrent writers and readers over every piece, many files each.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < info.NumPieces(); i += 4 {
				mp := info.Piece(i)
				p := ti.Piece(mp)
				want := data[mp.Offset() : mp.Offset()+mp.Length()]
				for off := int64(0); off < mp.Length(); off += 16 {
					end := min(off+16, mp.Length())
					if _, err := p.WriteAt(want[off:end], off); err != nil {
						t.Error(err)
						return
					}
				}
				got := make([]byte, len(want))
				if _, err := p.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
					t.Errorf("piece %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkPieces(t, ti, info, data)
	tor := openFilesOf(ti)
	if tor > maxOpenFiles {
		t.Fatalf("%d files open, at most %d allowed", tor, maxOpenFiles)
	}
	ti.Close()
	if n := openFilesOf(ti); n != 0 {
		t.Fatalf("%d files still open after Close", n)
	}
}

// asFilePiece is the filePiece of a piece that may hash itself.
func asFilePiece(p storage.PieceImpl) *filePiece {
	if sp, ok := p.(*selfHashPiece); ok {
		return sp.filePiece
	}
	return p.(*filePiece)
}

// openFilesOf reaches into the storage behind ti.
func openFilesOf(ti storage.TorrentImpl) int {
	p := asFilePiece(ti.Piece((&metainfo.Info{PieceLength: 1, Length: 1, Pieces: make([]byte, 20)}).Piece(0)))
	p.t.mu.Lock()
	defer p.t.mu.Unlock()
	n := 0
	for _, f := range p.t.files {
		if f.h != nil {
			n++
		}
	}
	if n != len(p.t.open) {
		panic("open list out of step")
	}
	return n
}

// TestFileStorageSwarm moves a torrent with empty files between two
// clients through the storage: the seeder's files are trusted in place,
// the leecher hashes what it receives; then the leecher restarts and
// resumes from its recorded completion without downloading again.
func TestFileStorageSwarm(t *testing.T) {
	info, data := buildInfo(t, "v1", 32<<10, []testFile{
		{"a.bin", 100 << 10}, {"empty", 0}, {"sub/b.bin", 70<<10 + 3}, {"sub/empty2", 0}, {"c.bin", 1}, {"d.bin", 50 << 10}})
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)

	seedDir := t.TempDir()
	off := 0
	for _, fi := range info.Files {
		p := filepath.Join(append([]string{seedDir, "v1"}, fi.Path...)...)
		os.MkdirAll(filepath.Dir(p), 0o750)
		os.WriteFile(p, data[off:off+int(fi.Length)], 0o640)
		off += int(fi.Length)
	}
	newClient := func() *torrent.Client {
		cl, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	seeder := newClient()
	defer seeder.Close()
	st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(seedDir, TrustedCompletion{})})
	<-st.GotInfo()
	port := seeder.LocalPort()

	leechDir, stateDir := t.TempDir(), t.TempDir()
	leech := func() (*torrent.Client, *torrent.Torrent, storage.PieceCompletion) {
		pc, err := storage.NewBoltPieceCompletion(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		cl := newClient()
		lt, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
			Storage: NewFileStorage(leechDir, SharedCompletion{pc})})
		<-lt.GotInfo()
		lt.DownloadAll()
		return cl, lt, pc
	}
	cl, lt, pc := leech()
	lt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, Trusted: true}})
	select {
	case <-lt.Complete().On():
	case <-time.After(30 * time.Second):
		t.Fatalf("download incomplete: %d bytes missing", lt.BytesMissing())
	}
	got := lt.Stats().BytesReadUsefulData
	cl.Close()
	pc.Close()
	if got.Int64() != info.TotalLength() {
		t.Fatalf("downloaded %d useful bytes, want %d", got.Int64(), info.TotalLength())
	}
	off = 0
	for _, fi := range info.Files {
		b, err := os.ReadFile(filepath.Join(append([]string{leechDir, "v1"}, fi.Path...)...))
		if err != nil || !bytes.Equal(b, data[off:off+int(fi.Length)]) {
			t.Fatalf("%v: %v, equal %v", fi.Path, err, bytes.Equal(b, data[off:off+int(fi.Length)]))
		}
		off += int(fi.Length)
	}

	// Restart: complete from the database at once, no peer needed.
	cl, lt, pc = leech()
	defer pc.Close()
	defer cl.Close()
	select {
	case <-lt.Complete().On():
	case <-time.After(10 * time.Second):
		t.Fatalf("restarted leecher not complete: %d bytes missing", lt.BytesMissing())
	}
}

func TestFileStorageCompletionWithoutRecord(t *testing.T) {
	// Pieces nobody recorded: incomplete without hashing when their bytes
	// are not on disk, unknown (to be hashed) when they may be.
	info, data := buildInfo(t, "v1", 16, []testFile{{"a", 20}, {"e", 0}, {"b", 20}})
	dir := t.TempDir()
	cl, ti := openTorrent(t, dir, info, nil)
	defer cl.Close()
	check := func(when string, want ...storage.Completion) {
		t.Helper()
		for i, w := range want {
			if c := ti.Piece(info.Piece(i)).Completion(); c != w {
				t.Fatalf("%s: piece %d: %+v, want %+v", when, i, c, w)
			}
		}
	}
	incomplete, unknown := storage.Completion{Ok: true}, storage.Completion{}
	check("fresh", incomplete, incomplete, incomplete)
	// a written in full, b up to byte 5 of piece 1 (torrent byte 25).
	if _, err := ti.Piece(info.Piece(0)).WriteAt(data[:16], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ti.Piece(info.Piece(1)).WriteAt(data[16:25], 0); err != nil {
		t.Fatal(err)
	}
	check("partly written", unknown, incomplete, incomplete)
	if _, err := ti.Piece(info.Piece(2)).WriteAt(data[32:40], 0); err != nil {
		t.Fatal(err)
	}
	check("all files full length", unknown, unknown, unknown)
}

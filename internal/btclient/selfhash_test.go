package btclient

import (
	"context"
	"crypto/sha1"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// A piece hashes itself from the blocks written to it when they cover it
// exactly once, and falls back to reading it back otherwise; either way
// the sum is the piece's. Blocks ahead of the hashed prefix are held under
// the buffer and given back.
func TestSelfHashPiece(t *testing.T) {
	const pieceLen, block = 64 << 10, 16 << 10
	type write struct{ off, n int64 }
	inOrder := []write{{0, block}, {block, block}, {2 * block, block}, {3 * block, block}}
	for _, tc := range []struct {
		name     string
		writes   []write
		buf      int64 // hash buffer; 0: 1 MiB
		readBack bool  // WithReadBackHashing
		want     string
	}{
		{name: "in order", writes: inOrder, want: "self"},
		{name: "reversed", writes: []write{{3 * block, block}, {2 * block, block}, {block, block}, {0, block}}, want: "self"},
		{name: "shuffled", writes: []write{{2 * block, block}, {0, block}, {3 * block, block}, {block, block}}, want: "self"},
		{name: "uneven blocks", writes: []write{{40 << 10, 24 << 10}, {0, 1}, {1, 40<<10 - 1}}, want: "self"},
		{name: "block written twice", writes: append(inOrder[:2:2], write{0, block}, inOrder[2], inOrder[3]), want: "read back"},
		{name: "ahead block written twice", writes: []write{{2 * block, block}, {2 * block, block}, {0, block}, {block, block}, {3 * block, block}}, want: "read back"},
		{name: "overlapping blocks", writes: []write{{0, block}, {2 * block, block}, {block, block + 8}, {3 * block, block}}, want: "read back"},
		{name: "waiting blocks overlapping", writes: []write{{2 * block, block}, {2*block + 8, block}, {0, block}, {block, block}, {3 * block, block}}, want: "read back"},
		{name: "missing block", writes: inOrder[:3], want: "short"},
		{name: "buffer exceeded", writes: []write{{3 * block, block}, {2 * block, block}, {block, block}, {0, block}}, buf: 2 * block, want: "read back"},
		{name: "read-back hashing", writes: inOrder, readBack: true, want: "library"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, data := buildInfo(t, "v1", pieceLen, []testFile{{"a.bin", pieceLen}})
			buf := NewHashBuffer(1 << 20)
			if tc.buf > 0 {
				buf = NewHashBuffer(tc.buf)
			}
			opts := []FileStorageOption{WithHashBuffer(buf)}
			if tc.readBack {
				opts = append(opts, WithReadBackHashing())
			}
			sc := NewFileStorage(t.TempDir(), storage.NewMapPieceCompletion(), opts...)
			t.Cleanup(func() { sc.Close() })
			ti, err := sc.OpenTorrent(context.Background(), info, metainfo.HashBytes([]byte(info.Name)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ti.Close() })
			mp := info.Piece(0)
			p := ti.Piece(mp)
			for _, w := range tc.writes {
				if n, err := p.WriteAt(data[w.off:w.off+w.n], w.off); err != nil || int64(n) != w.n {
					t.Fatalf("WriteAt(%d, %d) = %d, %v", w.off, w.n, n, err)
				}
			}
			stats := &sc.(*fileClient).hashStats
			sh, ok := p.(storage.SelfHashing)
			if tc.want == "library" {
				if ok {
					t.Fatal("a piece of a read-back storage hashes itself")
				}
				return
			}
			if !ok {
				t.Fatal("the piece does not hash itself")
			}
			sum, err := sh.SelfHash()
			if tc.want == "short" {
				if err == nil && sum == mp.V1Hash().Value {
					t.Fatal("a piece with a block missing passed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum != metainfo.Hash(sha1.Sum(data)) || sum != mp.V1Hash().Value {
				t.Fatalf("sum %x, want %x", sum, mp.V1Hash().Value)
			}
			self, back := stats.selfHashed.Load(), stats.readBacks.Load()
			if tc.want == "self" && (self != 1 || back != 0) || tc.want == "read back" && (self != 0 || back != 1) {
				t.Fatalf("%d self-hashed, %d read back; want %s", self, back, tc.want)
			}
			if n := buf.InUse(); n != 0 {
				t.Fatalf("%d bytes still held after the hash", n)
			}
		})
	}
}

// A wrong block fails its piece with self-hashing as with read-back
// hashing, and the failed piece is read back at its next check (so that
// the library's smart ban can compare what each peer sent).
func TestSelfHashWrongBlockFailsThePiece(t *testing.T) {
	const pieceLen, block = 64 << 10, 16 << 10
	info, data := buildInfo(t, "v1", pieceLen, []testFile{{"a.bin", 2 * pieceLen}})
	for _, readBack := range []bool{false, true} {
		t.Run(fmt.Sprintf("readBack=%v", readBack), func(t *testing.T) {
			var opts []FileStorageOption
			if readBack {
				opts = append(opts, WithReadBackHashing())
			}
			sc := NewFileStorage(t.TempDir(), storage.NewMapPieceCompletion(), opts...)
			t.Cleanup(func() { sc.Close() })
			ti, err := sc.OpenTorrent(context.Background(), info, metainfo.HashBytes([]byte(info.Name)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ti.Close() })
			bad := append([]byte(nil), data[:pieceLen]...)
			bad[block+5] ^= 0x40
			p := ti.Piece(info.Piece(0))
			for off := int64(0); off < pieceLen; off += block {
				if _, err := p.WriteAt(bad[off:off+block], off); err != nil {
					t.Fatal(err)
				}
			}
			// What the library does: the self-hash if the piece has one,
			// else SHA-1 over WriteTo.
			hashOf := func(p storage.PieceImpl) metainfo.Hash {
				if sh, ok := p.(storage.SelfHashing); ok {
					sum, err := sh.SelfHash()
					if err != nil {
						t.Fatal(err)
					}
					return sum
				}
				h := sha1.New()
				if _, err := (storage.Piece{PieceImpl: p}).WriteTo(h); err != nil {
					t.Fatal(err)
				}
				var sum metainfo.Hash
				copy(sum[:], h.Sum(nil))
				return sum
			}
			if hashOf(p) == info.Piece(0).V1Hash().Value {
				t.Fatal("a piece with a wrong block passed")
			}
			if err := p.MarkNotComplete(); err != nil {
				t.Fatal(err)
			}
			// The retry: read back, and right once the block is.
			p = ti.Piece(info.Piece(0))
			if _, ok := p.(storage.SelfHashing); ok {
				t.Fatal("a piece that failed its self-hash hashes itself again")
			}
			for off := int64(0); off < pieceLen; off += block {
				if _, err := p.WriteAt(data[off:off+block], off); err != nil {
					t.Fatal(err)
				}
			}
			if hashOf(p) != info.Piece(0).V1Hash().Value {
				t.Fatal("the piece rewritten right fails")
			}
			if err := p.MarkComplete(); err != nil {
				t.Fatal(err)
			}
			// Passed: the piece hashes itself again (if the storage does).
			if _, ok := ti.Piece(info.Piece(0)).(storage.SelfHashing); ok == readBack {
				t.Fatalf("self-hashing %v after the piece passed, read-back storage %v", ok, readBack)
			}
		})
	}
}

// Through the library: a leecher takes a torrent from a seeder whose copy
// of one block is wrong. Every other piece is self-hashed and completes;
// the bad piece fails, as with read-back hashing, again and again (the
// seeder is trusted, so not banned, and keeps sending the same block).
func TestSelfHashSwarm(t *testing.T) {
	const pieceLen = 256 << 10
	info, data := buildInfo(t, "v1", pieceLen, []testFile{{"a.bin", 4 << 20}})
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)
	const badPiece = 5
	for _, readBack := range []bool{false, true} {
		t.Run(fmt.Sprintf("readBack=%v", readBack), func(t *testing.T) {
			seedDir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(seedDir, "v1"), 0o750); err != nil {
				t.Fatal(err)
			}
			served := append([]byte(nil), data...)
			served[badPiece*pieceLen+100<<10] ^= 1
			if err := os.WriteFile(filepath.Join(seedDir, "v1", "a.bin"), served, 0o640); err != nil {
				t.Fatal(err)
			}
			newClient := func() *torrent.Client {
				cl, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cl.Close() })
				return cl
			}
			seeder := newClient()
			st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
				Storage: NewFileStorage(seedDir, TrustedCompletion{})})
			<-st.GotInfo()
			// Cleanups run last-registered first: the leecher closes, then
			// this waits for the seeder to see its connection go, then the
			// seeder closes. v1.59.1 panics when a torrent closes while it
			// reads a block for a peer (peerconn.go: the failed read of a
			// closed torrent leaves the request queued), and the leecher
			// asks for the bad piece again and again until the end.
			t.Cleanup(func() {
				for end := time.Now().Add(30 * time.Second); len(st.PeerConns()) > 0 && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond) // a read begun just before ends
			})

			// Room for the whole torrent: the library asks for blocks
			// all over it, and a full buffer would read pieces back.
			opts := []FileStorageOption{WithHashBuffer(NewHashBuffer(8 << 20))}
			if readBack {
				opts = append(opts, WithReadBackHashing())
			}
			sc := NewFileStorage(t.TempDir(), storage.NewMapPieceCompletion(), opts...)
			leecher := newClient()
			lt, _ := leecher.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes, Storage: sc})
			<-lt.GotInfo()
			lt.DownloadAll()
			lt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: seeder.LocalPort()}, Trusted: true}})
			deadline := time.Now().Add(60 * time.Second)
			for {
				ts := lt.Stats()
				bad := ts.PiecesDirtiedBad.Int64()
				good := 0
				for i := range info.NumPieces() {
					if i != badPiece && lt.Piece(i).State().Complete {
						good++
					}
				}
				if bad > 0 && good == info.NumPieces()-1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d good pieces complete, %d pieces failed", good, info.NumPieces()-1, bad)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if lt.Piece(badPiece).State().Complete {
				t.Fatal("the piece with a wrong block is complete")
			}
			stats := &sc.(*fileClient).hashStats
			self, back := stats.selfHashed.Load(), stats.readBacks.Load()
			t.Logf("self-hashed %d pieces, read back %d (read-back storage %v)", self, back, readBack)
			if readBack && self+back != 0 || !readBack && self < int64(info.NumPieces()-1) {
				t.Fatalf("self-hashed %d pieces, read back %d, read-back storage %v", self, back, readBack)
			}
		})
	}
}

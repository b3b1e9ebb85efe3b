package btclient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
)

// A block charged to the budget holds its room until it is garbage; a
// read that finds no room waits for that, or goes ahead after the wait.
func TestServeBudgetReleasesWithTheBuffer(t *testing.T) {
	b := NewServeBudget(64 << 10)
	b.wait = 300 * time.Millisecond
	held := make([][]byte, 4)
	for i := range held {
		held[i] = make([]byte, 16<<10)
		b.track(held[i])
	}
	if got := b.Stats().InUse; got != 64<<10 {
		t.Fatalf("in use %d, want %d", got, 64<<10)
	}
	// Full, and the blocks stay reachable: an overdraft after the wait.
	start := time.Now()
	extra := make([]byte, 16<<10)
	b.track(extra)
	if waited := time.Since(start); waited < b.wait {
		t.Errorf("went ahead after %v, want %v", waited, b.wait)
	}
	if st := b.Stats(); st.InUse != 80<<10 || st.Overdrafts != 1 {
		t.Errorf("stats %+v, want 80 KiB in use and 1 overdraft", st)
	}
	runtime.KeepAlive(held)
	runtime.KeepAlive(extra)
	// Dropping blocks makes room: the waiting read gets it without anyone
	// calling the collector (the budget starts a collection).
	b.wait = 10 * time.Second
	held[0], held[1], extra = nil, nil, nil
	start = time.Now()
	b.track(make([]byte, 16<<10))
	t.Logf("room came back after %v", time.Since(start))
	if st := b.Stats(); st.Waits != 2 || st.Overdrafts != 1 {
		t.Errorf("stats %+v, want 2 waits and 1 overdraft", st)
	}
	runtime.KeepAlive(held)
	held = nil
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().InUse != 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.Stats().InUse; got != 0 {
		t.Errorf("in use %d after every block is garbage, want 0", got)
	}
}

// greedy connects to a client, gets unchoked, pipelines requests for
// every block of the torrent (up to the library's queue of 1024) and never
// reads again. Its receive buffer is small so the seeder's writes stall
// instead of filling the kernel's buffers.
func greedy(t *testing.T, addr string, ih metainfo.Hash, n int, info *metainfo.Info) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	var id [20]byte
	copy(id[:], fmt.Sprintf("-GR0001-greedy%06d", n))
	if _, err := pp.Handshake(ctx, c, &ih, id, pp.NewPeerExtensionBytes(pp.ExtensionBitFast)); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := c.Write(pp.Message{Type: pp.Interested}.MustMarshalBinary()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("waiting for unchoke: %v", err)
		}
		if m.Type == pp.Unchoke {
			break
		}
	}
	var reqs []byte
	for off := int64(0); off < info.TotalLength() && off < 1024*MaxRequestLength; off += MaxRequestLength {
		m := pp.Message{Type: pp.Request, Index: pp.Integer(off / info.PieceLength), Begin: pp.Integer(off % info.PieceLength), Length: MaxRequestLength}
		reqs = append(reqs, m.MustMarshalBinary()...)
	}
	go c.Write(reqs)
	t.Cleanup(func() { c.Close() })
	return c
}

// Peers that pipeline requests and never read hold at most the client's
// budget, whatever their number; their writes stall, they are dropped,
// and a peer that reads still gets the whole torrent meanwhile.
func TestGreedyPeersHoldOnlyTheBudgetAndAreDropped(t *testing.T) {
	const size = 16 << 20
	info, data := buildInfo(t, "v1", 256<<10, []testFile{{"a.bin", size}})
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)
	seedDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(seedDir, "v1"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seedDir, "v1", "a.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	const stall = 2 * time.Second
	newClient := func() *torrent.Client {
		cl, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir(), WriteStall: stall})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	seeder := newClient()
	budget := NewServeBudget(4 << 20)
	st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(seedDir, TrustedCompletion{}, WithServeBudget(budget))})
	<-st.GotInfo()
	addr := fmt.Sprintf("127.0.0.1:%d", seeder.LocalPort())

	// 8 × 16 MiB asked for: 128 MiB without the budget.
	const peers = 8
	for i := range peers {
		greedy(t, addr, ih, i+1, info)
	}
	var peak int64
	deadline := time.Now().Add(10 * time.Second)
	for budget.Stats().Waits == 0 && time.Now().Before(deadline) {
		peak = max(peak, budget.Stats().InUse)
		time.Sleep(20 * time.Millisecond)
	}
	if budget.Stats().Waits == 0 {
		t.Fatalf("the greedy peers never filled the budget: %+v", budget.Stats())
	}

	// A peer that reads, while the greedy ones hold the budget.
	leecher := newClient()
	lt, _ := leecher.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(t.TempDir(), storage.NewMapPieceCompletion())})
	<-lt.GotInfo()
	lt.DownloadAll()
	start := time.Now()
	lt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: seeder.LocalPort()}, Trusted: true}})
	countGreedy := func() (n int) {
		for _, pc := range st.PeerConns() {
			if string(pc.PeerID[:8]) == "-GR0001-" {
				n++
			}
		}
		return n
	}
	tick := time.Now()
	done := false
	for !done {
		if testing.Verbose() && time.Since(tick) > time.Second {
			tick = time.Now()
			t.Logf("%v: %d greedy, budget %+v, %d bytes missing", time.Since(start).Round(time.Millisecond), countGreedy(), budget.Stats(), lt.BytesMissing())
		}
		select {
		case <-lt.Complete().On():
			done = true
		case <-time.After(20 * time.Millisecond):
			peak = max(peak, budget.Stats().InUse)
			if time.Since(start) > 60*time.Second {
				t.Fatalf("download incomplete with greedy peers around: %d bytes missing, budget %+v", lt.BytesMissing(), budget.Stats())
			}
		}
	}
	t.Logf("a reading peer got %d MiB in %v next to %d greedy ones; budget %+v", size>>20, time.Since(start).Round(time.Millisecond), peers, budget.Stats())
	// Overdrafts: at most one block per connection per wait.
	if over := budget.Stats().Overdrafts * MaxRequestLength; peak > budget.Max()+over {
		t.Errorf("budget in use peaked at %d, over its %d and %d of overdrafts", peak, budget.Max(), over)
	}

	// The greedy peers' writes stalled: they are dropped and their blocks
	// given back.
	deadline = time.Now().Add(stall + 10*time.Second)
	for {
		greedyLeft := countGreedy()
		runtime.GC()
		if greedyLeft == 0 && budget.Stats().InUse == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d greedy peers still connected, budget %+v, %v after a %v write stall", greedyLeft, budget.Stats(), time.Since(start), stall)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

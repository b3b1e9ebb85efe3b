package btclient

import (
	"bufio"
	"context"
	"crypto/tls"
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

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
)

// A block charged to the budget holds its room until it is garbage; a
// read that finds no room waits for that, or overdraws after the wait (up
// to a quarter of the budget, past that only after the escape wait).
func TestServeBudgetReleasesWithTheBuffer(t *testing.T) {
	b := NewServeBudget(64 << 10)
	b.wait, b.escape = 200*time.Millisecond, 600*time.Millisecond
	held := make([][]byte, 4)
	for i := range held {
		held[i] = make([]byte, 16<<10)
		b.track(held[i])
	}
	if got := b.Stats().InUse; got != 64<<10 {
		t.Fatalf("in use %d, want %d", got, 64<<10)
	}
	// Full, and the blocks stay reachable: an overdraft after the wait,
	// then one past the quarter only after the escape wait.
	for i, want := range []struct {
		wait          time.Duration
		inUse, escape int64
	}{{b.wait, 80 << 10, 0}, {b.escape, 96 << 10, 1}} {
		start := time.Now()
		held = append(held, make([]byte, 16<<10))
		b.track(held[len(held)-1])
		waited := time.Since(start)
		if waited < want.wait || waited > want.wait+time.Second {
			t.Errorf("overdraft %d after %v, want %v", i, waited, want.wait)
		}
		if st := b.Stats(); st.InUse != want.inUse || st.Overdrafts != int64(i+1) || st.Escapes != want.escape {
			t.Errorf("overdraft %d: stats %+v, want %d in use, %d escapes", i, st, want.inUse, want.escape)
		}
	}
	runtime.KeepAlive(held)
	// Dropping blocks makes room: the waiting read gets it without anyone
	// calling the collector (the budget starts a collection).
	b.wait, b.escape = 10*time.Second, 10*time.Second
	for i := range 4 {
		held[i] = nil
	}
	start := time.Now()
	b.track(make([]byte, 16<<10))
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("room came back after %v", waited)
	}
	if st := b.Stats(); st.Waits != 3 || st.Overdrafts != 2 {
		t.Errorf("stats %+v, want 3 waits and 2 overdrafts", st)
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
func greedy(t *testing.T, addr string, ih metainfo.Hash, n int, info *metainfo.Info, tc *tls.Config) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if tc != nil {
		c = tls.Client(c, tc)
	}
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
	budget.escape = stall + time.Second
	st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(seedDir, TrustedCompletion{}, WithServeBudget(budget))})
	<-st.GotInfo()
	addr := fmt.Sprintf("127.0.0.1:%d", seeder.LocalPort())

	// 8 × 16 MiB asked for: 128 MiB without the budget.
	const peers = 8
	for i := range peers {
		greedy(t, addr, ih, i+1, info, nil)
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
	// Overdrafts: up to a quarter of the budget, more only by escapes.
	if over := budget.Max()/4 + budget.Stats().Escapes*MaxRequestLength; peak > budget.Max()+over {
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

// A peer on a mutual-TLS connection that stops reading is dropped after
// the write stall as a plain one is (btclient wraps peertls's connections).
func TestGreedyTLSPeerIsDropped(t *testing.T) {
	info, data := buildInfo(t, "v1", 256<<10, []testFile{{"a.bin", 16 << 20}})
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)
	seedDir := t.TempDir()
	os.MkdirAll(filepath.Join(seedDir, "v1"), 0o750)
	if err := os.WriteFile(filepath.Join(seedDir, "v1", "a.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	pki := t.TempDir()
	if err := peertlstest.GeneratePKI(pki,
		peertlstest.CertSpec{Name: "seeder", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}},
		peertlstest.CertSpec{Name: "greedy", Identity: peertls.Identity{Tenant: "acme", Site: "s2"}}); err != nil {
		t.Fatal(err)
	}
	load := func(name string) *tls.Config {
		tc, _, err := peertls.Load(peertlstest.Config(pki, name))
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	const stall = time.Second
	seeder, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir(), TLS: load("seeder"), WriteStall: stall})
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	budget := NewServeBudget(0)
	st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(seedDir, TrustedCompletion{}, WithServeBudget(budget))})
	<-st.GotInfo()
	greedy(t, fmt.Sprintf("127.0.0.1:%d", seeder.LocalPort()), ih, 1, info, load("greedy"))
	start := time.Now()
	var connected bool
	for {
		n := len(st.PeerConns())
		connected = connected || n > 0
		if connected && n == 0 {
			break
		}
		if time.Since(start) > stall+10*time.Second {
			t.Fatalf("TLS peer that does not read still connected (%d) after %v, budget %+v", n, time.Since(start), budget.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("dropped after %v; budget %+v", time.Since(start).Round(time.Millisecond), budget.Stats())
}

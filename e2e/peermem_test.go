package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/localswarm"
)

// greedyPeer connects to an agent, gets unchoked, pipelines requests and
// then never reads again.
func greedyPeer(ctx context.Context, addr string, ih metainfo.Hash, n int, reqs []pp.Message) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) { c.Close(); return nil, err }
	var id [20]byte
	copy(id[:], fmt.Sprintf("-GR0001-greedy%06d", n))
	if _, err := pp.Handshake(ctx, c, &ih, id, pp.NewPeerExtensionBytes(pp.ExtensionBitFast)); err != nil {
		return fail(fmt.Errorf("handshake: %w", err))
	}
	if _, err := c.Write(pp.Message{Type: pp.Interested}.MustMarshalBinary()); err != nil {
		return fail(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
	for {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			return fail(fmt.Errorf("waiting for unchoke: %w", err))
		}
		if m.Type == pp.Unchoke {
			break
		}
	}
	c.SetReadDeadline(time.Time{})
	var buf bytes.Buffer
	for _, r := range reqs {
		buf.Write(r.MustMarshalBinary())
	}
	// Written in the background: the agent may stop reading once its own
	// writes block, and this peer never reads.
	go c.Write(buf.Bytes())
	return c, nil
}

// rssMiB is the process's resident set from /proc (0 where there is none).
func rssMiB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize()) >> 20
}

func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Eight connections that pipeline requests and never read (the attack of
// issue 12 item 7: whole 4 MiB pieces, then what a peer can still queue in
// 16 KiB blocks) pin a bounded amount of the agent's memory, and it comes
// back when they close.
func TestGreedyPeersPinBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB release")
	}
	sw := newSwarm(t, localswarm.OriginOptions{})
	dir := writePayload(t, t.TempDir(), 77, map[string]int64{"big.bin": 64 << 20})
	if _, err := sw.PublishWith(context.Background(), catalogpublish.PublishOptions{
		Name: "big", Version: "1.0", Paths: []string{filepath.Join(dir, "big.bin")}, Channels: []string{"stable"}, PieceLength: 4 << 20,
	}); err != nil {
		t.Fatal(err)
	}
	agents := startAgents(t, sw, 1, agent.Subscription{Name: "big", Channel: "stable"}, nil)
	waitActive(t, "big", "1.0", 60*time.Second, agents...)
	tb, err := catalog.ReadAll(context.Background(), sw.Store, catalog.TorrentKey("big", "1.0"), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	var reqs []pp.Message
	for i := range info.NumPieces() {
		reqs = append(reqs, pp.Message{Type: pp.Request, Index: pp.Integer(i), Begin: 0, Length: pp.Integer(info.PieceLength)})
	}
	const block = btclient.MaxRequestLength
	for off := int64(0); off < info.TotalLength() && len(reqs) < 2048; off += block {
		reqs = append(reqs, pp.Message{Type: pp.Request, Index: pp.Integer(off / info.PieceLength), Begin: pp.Integer(off % info.PieceLength), Length: block})
	}

	addr := fmt.Sprintf("127.0.0.1:%d", agents[0].Agent.PeerPort())

	// A whole-piece request is refused (BEP 6 reject); a 16 KiB block is
	// served. Before the cap the agent read the 4 MiB piece for the peer.
	probe, err := greedyPeer(context.Background(), addr, mi.HashInfoBytes(), 0, []pp.Message{
		{Type: pp.Request, Index: 1, Begin: 0, Length: pp.Integer(info.PieceLength)},
		{Type: pp.Request, Index: 2, Begin: 0, Length: btclient.MaxRequestLength},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[pp.MessageType]pp.Message{}
	probe.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := pp.Decoder{R: bufio.NewReader(probe), MaxLength: 8 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 8<<20); return &b }}}
	for got[pp.Piece].Type != pp.Piece || got[pp.Reject].Type != pp.Reject {
		var m pp.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("want a reject for the whole piece and the 16 KiB block: %v (got %v)", err, got)
		}
		if m.Type == pp.Piece && m.Index == 1 {
			t.Fatalf("the agent sent a %d byte block", len(m.Piece))
		}
		got[m.Type] = m
	}
	probe.Close()
	if r := got[pp.Reject]; r.Index != 1 || r.Length != pp.Integer(info.PieceLength) {
		t.Errorf("rejected %v, want the whole-piece request", r)
	}
	if p := got[pp.Piece]; p.Index != 2 || len(p.Piece) != btclient.MaxRequestLength {
		t.Errorf("got piece %d with %d bytes, want the 16 KiB block of piece 2", p.Index, len(p.Piece))
	}

	// More connections than the per-connection budget alone could
	// bound: 32 × 16 MiB would be 512 MiB.
	const greedy = 32
	budget := agents[0].Agent.PeerServeBudget()
	base, baseRSS := heapInUse(), rssMiB()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []net.Conn
	for i := range greedy {
		c, err := greedyPeer(ctx, addr, mi.HashInfoBytes(), i+1, reqs)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Let the agent read ahead all it will.
	var peak uint64
	var peakBudget int64
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		h := heapInUse()
		peak = max(peak, h)
		st := budget.Stats()
		peakBudget = max(peakBudget, st.InUse)
		t.Logf("sample: heap +%d MiB, budget in use %d MiB (%d waits, %d overdrafts), peers %d",
			(int64(h)-int64(base))>>20, st.InUse>>20, st.Waits, st.Overdrafts, releaseStatus(agents[0], "big", "1.0").Peers)
	}
	grown := int64(peak) - int64(base)
	peakRSS := rssMiB()
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(2 * time.Second)
	after := int64(heapInUse()) - int64(base)
	t.Logf("heap in use: base %d MiB, +%d MiB with %d greedy peers, +%d MiB after they closed; RSS %d -> %d -> %d MiB; budget peak %d MiB, now %d MiB",
		base>>20, grown>>20, greedy, after>>20, baseRSS, peakRSS, rssMiB(), peakBudget>>20, budget.Stats().InUse>>20)
	if os.Getenv("SWARMSHIP_PEERMEM_REPORT") != "" {
		return // measuring an old build
	}
	// Reads overdraw after waiting a second for room, up to a quarter of
	// the budget (more only after 35 s, which this test does not reach).
	st := budget.Stats()
	if limit := budget.Max() + budget.Max()/4 + st.Escapes*btclient.MaxRequestLength; peakBudget > limit {
		t.Errorf("budget in use %d bytes, over its %d and the overdraft limit", peakBudget, budget.Max())
	}
	// The stated bound: the client-wide budget of request data and its
	// overdrafts (64 + 16 MiB), plus what each connection costs whatever
	// it asks (read and write buffers, request queue: about 0.5 MiB), plus
	// slack for the rest of the agent.
	const bound = btclient.DefaultServeBudget*5/4 + greedy*(3<<20)/4 + 8<<20
	if grown > bound {
		t.Errorf("greedy peers grew the heap by %d MiB, bound %d MiB", grown>>20, bound>>20)
	}
	if after > 24<<20 {
		t.Errorf("heap still %d MiB above the base after the peers closed", after>>20)
	}
}

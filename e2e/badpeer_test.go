package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// badPeerIP is where the corrupting peer listens. anacrolix bans per IP,
// and every agent of a test runs on 127.0.0.1: a corrupting peer there
// would get the agents banned along with it. Any 127/8 address is
// loopback on Linux, so the bad peer gets one of its own.
const badPeerIP = "127.0.0.2"

// controlPeerIP is a loopback address nobody bans, for the probe.
const controlPeerIP = "127.0.0.3"

// TestBadPeerIsBanned runs three agents next to a peer that looks like a
// swarmship agent (agent peer ID prefix, announced to the origin's
// tracker) and seeds the release from storage that flips bytes on every
// read it serves. The agents must ban it (anacrolix drops a peer whose
// data fails a piece hash, and smart-bans peers whose blocks differ from a
// piece that later verifies), fetch the pieces elsewhere and end with
// files that match the manifest.
func TestBadPeerIsBanned(t *testing.T) {
	for _, ip := range []string{badPeerIP, controlPeerIP} {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Skipf("cannot listen on %s (needs the whole of 127/8 on loopback): %v", ip, err)
		}
		ln.Close()
	}
	// A slower origin makes the agents take pieces from peers first, the
	// bad one included.
	// The bad peer announces its own loopback address with ip=, which the
	// tracker honours only with trust_ip_param.
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(20 * time.Millisecond), Tracker: tracker.Config{TrustIPParam: true}})
	m := publish(t, sw, "app", "1.0", 40, map[string]int64{
		"bin/app":  6 << 20,
		"data.bin": 2<<20 + 777,
	}, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}

	bad, badT, corrupted := startCorruptingPeer(t, sw, m, sub)
	defer bad.Close()

	agents := startAgents(t, sw, 3, sub, nil)
	// Watch who talks to the bad peer while the agents download.
	seen := map[string]bool{}
	var maxBadConns int
	watch := func() {
		if n := len(badT.PeerConns()); n > maxBadConns {
			maxBadConns = n
		}
		for _, ra := range agents {
			if slices.ContainsFunc(releaseStatus(ra, "app", "1.0").PeerAddrs, isBadPeerAddr) {
				seen[ra.Name] = true
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !allActive(agents, "app", "1.0") {
		watch()
		select {
		case <-ctx.Done():
			for _, ra := range agents {
				t.Logf("%s status: %+v", ra.Name, releaseStatus(ra, "app", "1.0"))
			}
			t.Fatalf("agents did not activate app@1.0 next to a corrupting peer: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	if corrupted.Load() == 0 {
		t.Fatal("the bad peer served no bytes: the test proved nothing")
	}

	// Banned: the bad peer ends with no connection to any agent, and no
	// agent reconnects to it. (Connections between complete peers are
	// dropped anyway, so this alone proves little; the probe below does.)
	if !testenv.Poll(5*time.Second, 50*time.Millisecond, func() bool { return len(badT.PeerConns()) == 0 && !anyConnectedToBadPeer(agents) }) {
		for _, pc := range badT.PeerConns() {
			t.Logf("bad peer still connected to %v (peer id %q)", pc.RemoteAddr, pc.PeerID[:8])
		}
		t.Fatal("agents are still connected to the corrupting peer")
	}
	// Every agent now refuses the bad peer's IP before the BitTorrent
	// handshake, while another loopback address still gets one.
	ih := badT.InfoHash()
	for _, ra := range agents {
		addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(ra.Agent.PeerPort()))
		if err := probeHandshake(controlPeerIP, addr, ih); err != nil {
			t.Fatalf("%s: a handshake from %s (never banned) failed, so the probe proves nothing: %v", ra.Name, controlPeerIP, err)
		}
		if err := probeHandshake(badPeerIP, addr, ih); err == nil {
			t.Errorf("%s accepts a handshake from the corrupting peer's IP %s: not banned", ra.Name, badPeerIP)
		}
	}
	if n := len(badT.PeerConns()); n > 0 || anyConnectedToBadPeer(agents) {
		t.Fatalf("the corrupting peer got back in (%d connections)", n)
	}

	st := badT.Stats()
	var peerBytes, originBytes int64
	for _, ra := range agents {
		rs := releaseStatus(ra, "app", "1.0")
		peerBytes += rs.Downloaded.Peer
		originBytes += rs.Downloaded.Origin
	}
	t.Logf("bad peer: served %d corrupted bytes from storage, %d payload bytes sent (anacrolix count); %d of %d agents seen connected to it, at most %d at once",
		corrupted.Load(), st.BytesWrittenData.Int64(), len(seen), len(agents), maxBadConns)
	t.Logf("agents counted %d bytes from peers (the bad peer's included) and %d from the origin, for %d × %d bytes",
		peerBytes, originBytes, len(agents), m.TotalSize)
}

// startCorruptingPeer starts an anacrolix client that seeds m from the
// published payload through storage that corrupts every read, and
// announces it to the origin's tracker as an agent. It returns once the
// tracker lists it, so agents started afterwards are handed its address.
func startCorruptingPeer(t *testing.T, sw *localswarm.Swarm, m *catalog.Manifest, sub agent.Subscription) (*torrent.Client, *torrent.Torrent, *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	tb, err := catalog.ReadAll(ctx, sw.Store, catalog.TorrentKey(m.Name, m.Version), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(strings.NewReader(string(tb)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := btclient.New(btclient.Config{
		PeerIDPrefix: btclient.AgentPeerIDPrefix, // agents take it for one of theirs
		ListenHost:   badPeerIP,
		// No PEX, and (below) no peers from the tracker: the bad peer
		// never dials out, so agents see it only at badPeerIP (a dial from
		// it would come from 127.0.0.1, the agents' own address).
		NoPEX: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	corrupted := new(atomic.Int64)
	stor := corruptingStorage{
		ClientImplCloser: storage.NewFileOpts(storage.NewFileClientOpts{
			// The info name is the version: files are at data/<name>/<version>/<path>.
			ClientBaseDir:   filepath.Join(sw.CatalogDir, filepath.FromSlash(catalog.WebSeedBase(m.Name))),
			PieceCompletion: btclient.TrustedCompletion{},
			UsePartFiles:    g.Some(false),
		}),
		served: corrupted,
	}
	bt, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  mi.HashInfoBytes(),
		InfoBytes: mi.InfoBytes,
		Storage:   stor,
	})
	if !bt.Complete().Bool() {
		cl.Close()
		t.Fatalf("the bad peer does not believe it has the release (%d of %d bytes)", bt.BytesCompleted(), m.TotalSize)
	}
	// Announce as an agent of site-0, at badPeerIP (the tracker honours
	// ip= from loopback with trust_ip_param), asking for no peers.
	cfg := sw.AgentConfig("bad-peer", "site-0", "eu", sub)
	u, err := url.Parse(cfg.Tracker)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("role", "agent")
	q.Set("site", cfg.Site)
	q.Set("region", cfg.Region)
	if cfg.Tenant != "" {
		q.Set("tenant", cfg.Tenant)
	}
	if cfg.Token != "" {
		q.Set("token", cfg.Token)
	}
	q.Set("ip", badPeerIP)
	q.Set("numwant", "0")
	u.RawQuery = q.Encode()
	bt.AddTrackers([][]string{{u.String()}})
	if err := waitSeederListed(sw, u, mi.HashInfoBytes(), 15*time.Second); err != nil {
		cl.Close()
		t.Fatal(err)
	}
	return cl, bt, corrupted
}

// waitSeederListed scrapes the tracker until it counts a complete peer.
func waitSeederListed(sw *localswarm.Swarm, announce *url.URL, ih metainfo.Hash, timeout time.Duration) error {
	su := *announce
	su.Path = strings.TrimSuffix(su.Path, "announce") + "scrape"
	q := su.Query()
	for _, k := range []string{"ip", "numwant"} {
		q.Del(k)
	}
	q.Set("info_hash", string(ih[:]))
	su.RawQuery = q.Encode()
	var err error
	listed := testenv.Poll(timeout, 50*time.Millisecond, func() bool {
		var resp *http.Response
		if resp, err = http.Get(su.String()); err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Files map[string]struct {
				Complete int64 `bencode:"complete"`
			} `bencode:"files"`
		}
		err = bencode.NewDecoder(resp.Body).Decode(&body)
		return err == nil && body.Files[string(ih[:])].Complete > 0
	})
	if !listed {
		return fmt.Errorf("the tracker never listed the bad peer as a seeder (last error: %v)", err)
	}
	return nil
}

// probeHandshake connects from local to a peer at remote and exchanges
// BitTorrent handshakes for ih. anacrolix closes a connection from a
// banned IP as soon as it accepts it, so the handshake then fails.
func probeHandshake(local, remote string, ih metainfo.Hash) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", remote)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hs := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
	hs = append(hs, ih[:]...)
	hs = append(hs, "-PR0001-handshake-pr"...)
	if _, err := c.Write(hs); err != nil {
		return err
	}
	reply := make([]byte, len(hs))
	if _, err := io.ReadFull(c, reply); err != nil {
		return fmt.Errorf("no handshake: %w", err)
	}
	if !bytes.Equal(reply[:20], hs[:20]) || !bytes.Equal(reply[28:48], ih[:]) {
		return fmt.Errorf("unexpected handshake %q", reply)
	}
	return nil
}

func isBadPeerAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host == badPeerIP
}

func anyConnectedToBadPeer(agents []*localswarm.RunningAgent) bool {
	for _, ra := range agents {
		if slices.ContainsFunc(releaseStatus(ra, "app", "1.0").PeerAddrs, isBadPeerAddr) {
			return true
		}
	}
	return false
}

func allActive(agents []*localswarm.RunningAgent, name, version string) bool {
	for _, ra := range agents {
		if !localswarm.IsActive(ra.Agent, name, version) {
			return false
		}
	}
	return true
}

// corruptingStorage serves every piece with bytes flipped. Completion
// comes from the wrapped storage (TrustedCompletion: all complete), so the
// client seeds at once; it never writes.
type corruptingStorage struct {
	storage.ClientImplCloser
	served *atomic.Int64
}

func (s corruptingStorage) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	ti, err := s.ClientImplCloser.OpenTorrent(ctx, info, ih)
	if err != nil {
		return ti, err
	}
	if piece := ti.Piece; piece != nil {
		ti.Piece = func(p metainfo.Piece) storage.PieceImpl {
			return corruptingPiece{PieceImpl: piece(p), served: s.served}
		}
	}
	if piece := ti.PieceWithHash; piece != nil {
		ti.PieceWithHash = func(p metainfo.Piece, h g.Option[[]byte]) storage.PieceImpl {
			return corruptingPiece{PieceImpl: piece(p, h), served: s.served}
		}
	}
	// Every read goes through corruptingPiece.ReadAt.
	ti.NewReader, ti.NewPieceReader = nil, nil
	return ti, nil
}

// corruptingPiece hides the wrapped piece's optional interfaces (readers,
// io.WriterTo) so that reads cannot bypass ReadAt.
type corruptingPiece struct {
	storage.PieceImpl
	served *atomic.Int64
}

// ReadAt flips one byte in every 1 KiB of what it reads.
func (p corruptingPiece) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.PieceImpl.ReadAt(b, off)
	for i := 0; i < n; i += 1 << 10 {
		b[i] ^= 0xff
	}
	p.served.Add(int64(n))
	return n, err
}

func (corruptingPiece) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("corrupting peer: read-only storage")
}

func (corruptingPiece) MarkComplete() error    { return nil }
func (corruptingPiece) MarkNotComplete() error { return nil }

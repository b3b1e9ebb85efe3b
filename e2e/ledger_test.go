package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// stallPeerIP is where the stalling peer listens: its own loopback
// address, so that quarantining it by address could not take the agents
// (all on 127.0.0.1) with it, and the test shows quarantine by peer ID.
const stallPeerIP = "127.0.0.4"

// TestFreeloaderAndStallerAreQuarantined runs three agents with a
// freeloader (an agent that never uploads) and a raw peer that accepts
// requests and never answers them. The agents' ledgers must show both on
// the origin's peer view (and the dashboard), the operator quarantines
// them (the freeloader by agent ID, the staller by peer ID), and the next
// release reaches the three agents with the origin sending them no more
// than the swarm's usual bound.
func TestFreeloaderAndStallerAreQuarantined(t *testing.T) {
	if ln, err := net.Listen("tcp", stallPeerIP+":0"); err != nil {
		if testenv.InCI() {
			t.Fatalf("cannot listen on %s (needs the whole of 127/8 on loopback): %v", stallPeerIP, err)
		}
		t.Skipf("cannot listen on %s (needs the whole of 127/8 on loopback): %v", stallPeerIP, err)
	} else {
		ln.Close()
	}
	sw := newSwarm(t, localswarm.OriginOptions{
		Tracker: tracker.Config{TrustIPParam: true},
		Configure: func(c *seeder.Config) {
			c.Reports.FreeloaderMinBytes = 1 << 20
			c.Reports.FreeloaderStarved = 3 * time.Second
			c.Reports.MisbehavingStalled = 2
		},
	})
	sizes := map[string]int64{"bin/app": 10 << 20, "data.bin": 2<<20 + 333}
	m1 := publish(t, sw, "app", "1.0", 71, sizes, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}

	staller := startStallingPeer(t, sw, m1, sub)

	// Slow enough that downloads outlast the stall timeout and the
	// freeloader holds pieces the others want for seconds.
	slow := func(cfg *agent.Config) {
		cfg.Rates = agent.RatesConfig{Profiles: []policy.RateProfile{{Name: "wan", Down: 3 << 19}}, Default: "wan"}
		cfg.TestLedgerStall = 4 * time.Second
		// Pieces the freeloader advertises and never sends go back to
		// the origin sooner (the offload's orphan timeout).
		cfg.Offload.OrphanTimeout = 3 * time.Second
	}
	honest := startAgents(t, sw, 3, sub, slow)
	fcfg := sw.AgentConfig("freeloader", "site-0", "eu", sub)
	slow(fcfg)
	fcfg.TestNoUpload = true
	free, err := sw.StartAgent(context.Background(), "freeloader", fcfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 120*time.Second, honest...)
	// Whether the staller got requests before the agents finished is
	// timing; the flag polled below needs them and says so if missing.
	t.Logf("the stalling peer got %d requests", staller.requests.Load())

	// The origin's peer view flags both.
	base := sw.OriginURL
	fid := free.Agent.PeerID()
	freeID := hex.EncodeToString(fid[:])
	var view rollout.Contribution
	var freeRow, stallRow rollout.PeerRow
	found := testenv.Poll(60*time.Second, 250*time.Millisecond, func() bool {
		view = getPeers(t, base)
		freeRow, stallRow = rollout.PeerRow{}, rollout.PeerRow{}
		for _, p := range view.Peers {
			switch p.PeerID {
			case freeID:
				freeRow = p
			case staller.idHex():
				stallRow = p
			}
		}
		// The freeloader's agent ID comes with its own live report.
		return freeRow.Freeloader && freeRow.AgentID != "" && stallRow.Misbehaving
	})
	if !found {
		t.Fatalf("peer view never flagged both: freeloader %+v, staller %+v (view: %d freeloaders, %d misbehaving)", freeRow, stallRow, view.Freeloaders, view.Misbehaving)
	}
	t.Logf("freeloader: received %d sent %d starved %ds; staller: %d stalled requests (%d requests seen by it)",
		freeRow.Received, freeRow.Sent, freeRow.Starved, stallRow.Stalled, staller.requests.Load())
	if freeRow.AgentID == "" || freeRow.Misbehaving {
		t.Errorf("freeloader row %+v: want its agent ID and no misbehaviour flag", freeRow)
	}
	for _, ra := range honest {
		for _, p := range view.Peers {
			id := ra.Agent.PeerID()
			if p.PeerID == hex.EncodeToString(id[:]) && (p.Freeloader || p.Misbehaving) {
				t.Errorf("honest %s flagged: %+v", ra.Name, p)
			}
		}
	}
	if testenv.FindTool("chromium") != "" || testenv.InCI() {
		dom := runChromium(t, testenv.RequireTool(t, "chromium"), "--virtual-time-budget=5000", "--dump-dom", base+"/dashboard/")
		for _, want := range []string{`data-peer="` + freeID + `" data-freeloader="true" data-misbehaving="false"`, `data-peer="` + staller.idHex() + `" data-freeloader="false" data-misbehaving="true"`} {
			if !strings.Contains(dom, want) {
				t.Errorf("dashboard does not show %s:\n%s", want, truncate(dom, 3000))
			}
		}
	}

	// Quarantine: the freeloader by its agent ID (it keeps it across
	// restarts), the staller by peer ID.
	postQuarantine(t, base, "agent:"+freeRow.AgentID)
	postQuarantine(t, base, "peer:"+staller.idHex())
	if !testenv.Poll(30*time.Second, 100*time.Millisecond, func() bool {
		for _, ra := range honest {
			if ra.Agent.Ledger().Quarantined != 2 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("agents did not take the quarantine: %+v", honest[0].Agent.Ledger())
	}
	ih1 := metainfo.Hash(mustHash(t, m1.InfoHash))
	for _, p := range sw.Origin.Tracker().Peers(ih1) {
		if hex.EncodeToString(p.ID[:]) == freeID || p.ID == staller.id {
			t.Errorf("tracker still lists quarantined peer %x", p.ID)
		}
	}
	if reason := staller.announce(t, ih1); !strings.Contains(reason, "quarantined") {
		t.Errorf("staller's announce after quarantine: %q, want a refusal", reason)
	}

	// The next release: the rest of the swarm completes with the usual
	// origin egress.
	before := sw.Origin.Egress().Total()
	m2 := publish(t, sw, "app", "2.0", 72, sizes, "stable")
	waitActive(t, "app", "2.0", 120*time.Second, honest...)
	for _, ra := range honest {
		checkActiveFiles(t, ra, m2)
	}
	var honestOrigin int64
	for _, ra := range honest {
		honestOrigin += releaseStatus(ra, "app", "2.0").Downloaded.Origin
	}
	// The freeloader may still fetch from the origin (it is not banned
	// from the catalog); what it took does not count against the swarm.
	egress := sw.Origin.Egress().Total() - before - originBytes(free, "app", "2.0")
	copies := float64(egress) / float64(m2.TotalSize)
	t.Logf("after quarantine: origin sent the three agents %.3f copies (%d bytes; their counters say %d)", copies, egress, honestOrigin)
	// The agents' own counters are exact (the five-agent test checks
	// them against the origin's); the origin's total may still include
	// bytes in flight to the freeloader, so it is only logged.
	if c := float64(honestOrigin) / float64(m2.TotalSize); c > 1.2 {
		t.Fatalf("the agents took %.2f copies from the origin after the quarantine, want <= 1.2", c)
	}
	dropped := int64(0)
	for _, ra := range honest {
		dropped += ra.Agent.Ledger().Dropped
	}
	t.Logf("connections dropped for quarantine: %d", dropped)
}

func mustHash(t *testing.T, s string) [20]byte {
	t.Helper()
	var h [20]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		t.Fatalf("infohash %q", s)
	}
	copy(h[:], b)
	return h
}

func getPeers(t *testing.T, base string) rollout.Contribution {
	t.Helper()
	var c rollout.Contribution
	if err := json.Unmarshal([]byte(httpGet(t, base+"/api/v1/peers")), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func postQuarantine(t *testing.T, base, entry string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"entry": entry, "reason": "e2e"})
	resp, err := http.Post(base+seeder.QuarantinePath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("quarantine %s: %s %s", entry, resp.Status, b)
	}
}

// stallingPeer is a raw BitTorrent peer that says it has every piece,
// unchokes everyone, takes their requests and never answers one.
type stallingPeer struct {
	id          [20]byte
	ln          net.Listener
	announceURL *url.URL
	requests    atomic.Int64
	mu          sync.Mutex
	conns       []net.Conn
}

func (s *stallingPeer) idHex() string { return hex.EncodeToString(s.id[:]) }

func startStallingPeer(t *testing.T, sw *localswarm.Swarm, m *catalog.Manifest, sub agent.Subscription) *stallingPeer {
	t.Helper()
	s := &stallingPeer{}
	copy(s.id[:], "-XS0001-")
	rand.Read(s.id[8:])
	ln, err := net.Listen("tcp", stallPeerIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	ih := metainfo.Hash(mustHash(t, m.InfoHash))
	numPieces := int((m.TotalSize + m.PieceLength - 1) / m.PieceLength)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.serve(c, ih, numPieces)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	cfg := sw.AgentConfig("staller", "site-0", "eu", sub)
	u, err := url.Parse(cfg.Tracker)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("role", "agent")
	q.Set("site", cfg.Site)
	q.Set("region", cfg.Region)
	q.Set("ip", stallPeerIP)
	q.Set("port", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	q.Set("numwant", "0")
	q.Set("uploaded", "0")
	q.Set("downloaded", "0")
	q.Set("left", "0")
	q.Set("peer_id", string(s.id[:]))
	u.RawQuery = q.Encode()
	s.announceURL = u
	if reason := s.announce(t, ih); reason != "" {
		t.Fatalf("stalling peer's announce refused: %s", reason)
	}
	// Keep it listed while the test runs (announces expire).
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
				s.announceQuiet(ih)
			}
		}
	}()
	return s
}

// announce announces the peer for ih and returns the failure reason, ""
// when the tracker took it.
func (s *stallingPeer) announce(t *testing.T, ih metainfo.Hash) string {
	t.Helper()
	reason, err := s.announceQuiet(ih)
	if err != nil {
		t.Fatal(err)
	}
	return reason
}

func (s *stallingPeer) announceQuiet(ih metainfo.Hash) (string, error) {
	u := *s.announceURL
	q := u.Query()
	q.Set("info_hash", string(ih[:]))
	u.RawQuery = q.Encode()
	resp, err := http.Get(u.String())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Failure string `bencode:"failure reason"`
	}
	if err := bencode.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("announce answer: %w", err)
	}
	return body.Failure, nil
}

func (s *stallingPeer) serve(c net.Conn, ih metainfo.Hash, numPieces int) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := pp.Handshake(ctx, c, &ih, s.id, pp.PeerExtensionBits{})
	cancel()
	if err != nil {
		return
	}
	have := make([]bool, numPieces)
	for i := range have {
		have[i] = true
	}
	for _, msg := range []pp.Message{{Type: pp.Bitfield, Bitfield: have}, {Type: pp.Unchoke}} {
		b, err := msg.MarshalBinary()
		if err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
	d := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
	for {
		var msg pp.Message
		if err := d.Decode(&msg); err != nil {
			return
		}
		if msg.Type == pp.Request {
			s.requests.Add(1)
		}
	}
}

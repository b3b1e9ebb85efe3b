package rollout

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/internal/report"
)

func peerHex(n int) string { return hex.EncodeToString([]byte(fmt.Sprintf("-SS0100-%012d", n))) }

// Three honest agents report a freeloader (took 8 MiB, gave nothing,
// starved them), a staller and each other; a download-only agent that
// takes without giving is not a freeloader.
func TestContributionFlagsFreeloadersAndStallers(t *testing.T) {
	s, clock := newTestStore(t, "", Origin{})
	free, stall, donly := peerHex(90), peerHex(91), peerHex(92)
	for i := 1; i <= 3; i++ {
		r := mkReport(fmt.Sprintf("a%d", i), "s", "eu", "1.0")
		r.PeerID = peerHex(i)
		peers := []report.PeerLedger{
			{PeerID: free, Addr: "10.0.0.90:1", Up: 3 << 20, Starved: 5},
			{PeerID: stall, Addr: "10.0.0.91:1", Stalled: 3},
			{PeerID: donly, Addr: "10.0.0.92:1", Up: 3 << 20, Starved: 5},
		}
		for j := 1; j <= 3; j++ {
			if j != i {
				peers = append(peers, report.PeerLedger{PeerID: peerHex(j), Addr: fmt.Sprintf("10.0.0.%d:1", j), Up: 2 << 20, Down: 2 << 20})
			}
		}
		r.Ledger = &report.Ledger{UpRate: float64(i) * 1e6, UpPeak: float64(i) * 2e6, Peers: peers}
		if err := s.ingest(r); err != nil {
			t.Fatal(err)
		}
	}
	for id, mode := range map[string]string{"free": "on", "donly": "download-only"} {
		r := mkReport(id, "s", "eu", "1.0")
		r.PeerID = map[string]string{"free": free, "donly": donly}[id]
		r.Policy.Mode = mode
		r.Ledger = &report.Ledger{TLSID: strings.Repeat("ab", 32)}
		if mode != "on" {
			r.Ledger.TLSID = ""
		}
		if err := s.ingest(r); err != nil {
			t.Fatal(err)
		}
	}
	s.Tick(clock.Now())
	c := s.Contribution(nil)
	rows := map[string]PeerRow{}
	for _, p := range c.Peers {
		rows[p.PeerID] = p
	}
	if r := rows[free]; !r.Freeloader || r.AgentID != "free" || r.Received != 9<<20 || r.Reporters != 3 {
		t.Errorf("freeloader row %+v", r)
	}
	if r := rows[stall]; !r.Misbehaving || r.Freeloader || r.StallReporters != 3 {
		t.Errorf("staller row %+v", r)
	}
	if r := rows[donly]; r.Freeloader || !r.DownloadOnly {
		t.Errorf("download-only row %+v", r)
	}
	for i := 1; i <= 3; i++ {
		if r := rows[peerHex(i)]; r.Freeloader || r.Misbehaving || r.Reporters != 2 {
			t.Errorf("honest agent row %+v", r)
		}
	}
	if c.Freeloaders != 1 || c.Misbehaving != 1 {
		t.Errorf("counts: %d freeloaders, %d misbehaving", c.Freeloaders, c.Misbehaving)
	}
	// Weights: a3 has the highest capacity and a1 the lowest.
	w := s.Weights()
	id := func(n int) (out [20]byte) { copy(out[:], fmt.Sprintf("-SS0100-%012d", n)); return }
	if !(w[id(3)] > w[id(2)] && w[id(2)] > w[id(1)]) {
		t.Errorf("weights %v %v %v: want rising with capacity", w[id(1)], w[id(2)], w[id(3)])
	}
	if len(s.Slow()) != 0 {
		t.Errorf("slow agents %v without any upload limit", s.Slow())
	}
	if pid, ok := s.PeerIDOf("", report.QuarantineAgent, "free"); !ok || hex.EncodeToString(pid[:]) != free {
		t.Errorf("agent:free maps to %x, %v", pid, ok)
	}
	if pid, ok := s.PeerIDOf("", report.QuarantineTLS, strings.Repeat("ab", 32)); !ok || hex.EncodeToString(pid[:]) != free {
		t.Errorf("tls: maps to %x, %v", pid, ok)
	}
	if _, ok := s.PeerIDOf("other", report.QuarantineAgent, "free"); ok {
		t.Error("agent:free of another tenant maps")
	}

	// The API cuts the view to a tenant.
	rec := httptest.NewRecorder()
	s.handlePeers(rec, httptest.NewRequest(http.MethodGet, "/api/v1/peers", nil), "other")
	if !strings.Contains(rec.Body.String(), `"peers": []`) {
		t.Errorf("another tenant's view: %s", rec.Body.String())
	}
}

package report

import (
	"strings"
	"testing"
	"time"
)

func TestParseQuarantine(t *testing.T) {
	for in, want := range map[string]string{
		"peer:2D5353303130302D6A7041523455663869367055": "peer:2d5353303130302d6a7041523455663869367055",
		"addr:10.1.2.3":                   "addr:10.1.2.3",
		"addr:[::ffff:10.1.2.3]:6881":     "addr:10.1.2.3:6881",
		"addr:[2001:db8::1]:6881":         "addr:[2001:db8::1]:6881",
		"agent:063340c5875b30e3":          "agent:063340c5875b30e3",
		"tls:" + strings.Repeat("ab", 32): "tls:" + strings.Repeat("ab", 32),
	} {
		got, err := ParseQuarantine(in)
		if err != nil || got != want {
			t.Errorf("ParseQuarantine(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "peer", "peer:abc", "addr:example.com", "agent:a/b", "tls:ab", "ip:10.0.0.1", "addr:fe80::1%eth0", strings.Repeat("x", 100)} {
		if got, err := ParseQuarantine(bad); err == nil {
			t.Errorf("ParseQuarantine(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLedgerValidation(t *testing.T) {
	base := func() *Report {
		return &Report{V: Version, AgentID: "a1", IntervalSeconds: 1, Sent: time.Now(),
			Ledger: &Ledger{UpRate: 10, UpPeak: 20, Peers: []PeerLedger{{PeerID: strings.Repeat("2d", 20), Addr: "10.0.0.1:6881", Down: 1, Up: 2}}}}
	}
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Report){
		"negative rate":  func(r *Report) { r.Ledger.UpRate = -1 },
		"huge peak":      func(r *Report) { r.Ledger.UpPeak = 2 * MaxRate },
		"bad tls id":     func(r *Report) { r.Ledger.TLSID = "zz" },
		"bad peer id":    func(r *Report) { r.Ledger.Peers[0].PeerID = "x" },
		"bad addr":       func(r *Report) { r.Ledger.Peers[0].Addr = "host:1" },
		"negative count": func(r *Report) { r.Ledger.Peers[0].Stalled = -1 },
		"huge count":     func(r *Report) { r.Ledger.Peers[0].Down = MaxLedgerCount + 1 },
		"too many peers": func(r *Report) {
			r.Ledger.Peers = make([]PeerLedger, MaxLedgerPeers+1)
			for i := range r.Ledger.Peers {
				r.Ledger.Peers[i] = PeerLedger{PeerID: strings.Repeat("2d", 20), Addr: "10.0.0.1:1"}
			}
		},
	} {
		r := base()
		mutate(r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

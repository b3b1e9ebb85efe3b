package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/report"
)

func TestSwarmWatcher(t *testing.T) {
	id := func(b byte) [20]byte { var x [20]byte; x[0] = b; return x }
	hexID := func(b byte) string { x := id(b); return hex.EncodeToString(x[:]) }
	ih := id(0xaa)

	var query map[string][]string
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/t/swarm" {
			http.NotFound(w, r)
			return
		}
		query, auth = r.URL.Query(), r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(report.SwarmView{Interval: 60, Agents: []report.SwarmMember{
			{PeerID: hexID(1), Site: "a", Region: "eu", Left: 5},                // us
			{PeerID: hexID(2), Site: "a", Region: "eu", Left: 5},                // same site
			{PeerID: hexID(3), Site: "b", Region: "eu", Left: 5},                // other site
			{PeerID: hexID(4), Site: "b", Region: "eu", Left: 0},                // other site, complete
			{PeerID: hexID(5), Site: "a", Region: "us", Left: 5},                // same name, other region
			{PeerID: "zz", Site: "b", Region: "eu", Left: 5},                    // garbage: skipped
			{PeerID: hexID(6), Site: "a", Region: "eu", Left: 0, Gateway: true}, // same site, complete
		}})
	}))
	defer srv.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	if w := newSwarmWatcher(srv.URL+"/t/tracker.php", "a", "eu", ih, srv.Client(), log); w != nil {
		t.Error("a tracker URL not ending in /announce got a watcher")
	}
	// The token rides in the client's transport, never in the URL.
	client := &http.Client{Transport: newBearerTransport("tok", srv.URL, http.DefaultTransport)}
	w := newSwarmWatcher(srv.URL+"/t/announce?tenant=acme&locality=gateway&role=agent", "a", "eu", ih, client, log)
	if w == nil {
		t.Fatal("no watcher")
	}
	if _, ok := w.downloaders(time.Minute); ok {
		t.Error("downloaders before any fetch")
	}
	if n := w.siteDownloaders(time.Minute); n != 0 {
		t.Errorf("siteDownloaders before any fetch: %d", n)
	}
	if err := w.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if query["tenant"][0] != "acme" || query["token"] != nil || query["info_hash"][0] != string(ih[:]) || query["locality"] != nil {
		t.Errorf("swarm view query %v", query)
	}
	if auth != "Bearer tok" {
		t.Errorf("swarm view Authorization %q", auth)
	}
	d, ok := w.downloaders(time.Minute)
	if !ok {
		t.Fatal("fresh list not used")
	}
	// Other sites' downloaders only (region counts: a@us is another site).
	if len(d) != 2 || !d[id(3)] || !d[id(5)] {
		t.Errorf("downloaders %v, want agents 3 and 5", d)
	}
	if n := w.siteDownloaders(time.Minute); n != 2 {
		t.Errorf("siteDownloaders %d, want 2 (us and agent 2)", n)
	}
	if _, ok := w.downloaders(-time.Second); ok {
		t.Error("stale list used")
	}
	var nilWatcher *swarmWatcher
	if _, ok := nilWatcher.downloaders(time.Minute); ok || nilWatcher.siteDownloaders(time.Minute) != 0 {
		t.Error("nil watcher answered")
	}

	// A refusal (bencoded, not JSON) or an HTTP error keeps the last list.
	bad := newSwarmWatcher(srv.URL+"/x/announce", "a", "eu", ih, srv.Client(), log)
	if err := bad.fetch(context.Background()); err == nil {
		t.Error("404 accepted")
	}
}

func TestParallelSharedBySite(t *testing.T) {
	for _, tc := range []struct {
		parallel, site, want int
	}{{4, 0, 4}, {4, 1, 4}, {4, 2, 2}, {4, 3, 2}, {4, 4, 1}, {4, 12, 1}, {1, 4, 1}} {
		w := &swarmWatcher{site: "a", fetched: time.Now(), members: map[[20]byte]report.SwarmMember{}}
		for i := range tc.site {
			w.members[[20]byte{byte(i)}] = report.SwarmMember{Site: "a", Left: 1}
		}
		w.members[[20]byte{0xff}] = report.SwarmMember{Site: "b", Left: 1}
		o := &offloader{cfg: OffloadConfig{Parallel: tc.parallel}, watch: w}
		if got := o.parallel(); got != tc.want {
			t.Errorf("Parallel %d, %d site downloaders: %d, want %d", tc.parallel, tc.site, got, tc.want)
		}
	}
}

// TestOriginPacing: with site_wan_down, a site's agents together fetch at
// OriginShare of it while another site is in the swarm, and without limit
// when their site is alone or the list is stale.
func TestOriginPacing(t *testing.T) {
	const down = 50e6 / 8 // 50 Mbit/s in bytes
	for _, tc := range []struct {
		name      string
		site      int  // listed agents of our site
		otherSite bool // an agent of another site is listed
		stale     bool
		want      rate.Limit
	}{
		{"alone", 1, false, false, rate.Inf},
		{"one of four, other sites", 4, true, false, 0.6 * down / 4},
		{"only agent, other sites", 1, true, false, 0.6 * down},
		{"list not fetched yet", 1, true, true, rate.Inf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &swarmWatcher{site: "a", fetched: time.Now(), members: map[[20]byte]report.SwarmMember{}}
			if tc.stale {
				w.fetched = time.Time{}
			}
			for i := range tc.site {
				w.members[[20]byte{byte(i)}] = report.SwarmMember{Site: "a", Left: 1}
			}
			if tc.otherSite {
				w.members[[20]byte{0xff}] = report.SwarmMember{Site: "b"}
			}
			cfg := OffloadConfig{SiteWANDown: down, OriginShare: 0.6}
			o := &offloader{cfg: cfg, watch: w, pacer: rate.NewLimiter(rate.Inf, paceBurst)}
			o.pace()
			if got := o.pacer.Limit(); got != tc.want {
				t.Errorf("origin rate %v, want %v", got, tc.want)
			}
		})
	}
	// Without site_wan_down there is no pacer and pace does nothing.
	(&offloader{}).pace()
}

// TestExtraSiteConns: a gateway drops its connections to the other agents
// of a site it reaches through that site's gateway, and keeps them while
// the site is open (several candidates, none trusted) or its gateway is
// not connected.
func TestExtraSiteConns(t *testing.T) {
	id := func(b byte) [20]byte { var x [20]byte; x[0] = b; return x }
	members := map[[20]byte]report.SwarmMember{
		id(1): {Site: "a", Gateway: true, Trusted: true}, // us
		id(2): {Site: "a", Trusted: true},                // our site
		id(3): {Site: "b", Gateway: true, Trusted: true}, // b's gateway
		id(4): {Site: "b", Trusted: true},
		id(5): {Site: "b", Trusted: true},
		id(6): {Site: "c", Gateway: true}, // c is open
		id(7): {Site: "c", Gateway: true},
		id(8): {Site: "d", Gateway: true, Trusted: true}, // d's gateway, not connected
		id(9): {Site: "d", Trusted: true},
	}
	all := map[[20]byte]bool{}
	for i := range 9 {
		all[id(byte(i+1))] = true
	}
	delete(all, id(8))
	got := extraSiteConns(members, all, "a", "", true)
	if len(got) != 2 || !got[id(4)] || !got[id(5)] {
		t.Errorf("gateway closes %v, want b's agents 4 and 5 only", got)
	}
	if got := extraSiteConns(members, map[[20]byte]bool{id(4): true}, "a", "", true); len(got) != 0 {
		t.Errorf("gateway closes %v without a connection to b's gateway", got)
	}
	// A non-gateway (it took itself for the gateway at the start) drops
	// its connections to the other agents of sites with an elected
	// gateway, d's too, and keeps gateways and the open site's agents.
	got = extraSiteConns(members, all, "a", "", false)
	if len(got) != 3 || !got[id(4)] || !got[id(5)] || !got[id(9)] {
		t.Errorf("non-gateway closes %v, want 4, 5 and 9", got)
	}
}

// TestSwarmWatcherPersonalView: with a report (peer_id, connected) the
// tracker's view is personal, and members it does not mark trusted hold no
// shard and do not count as site downloaders; an open site's candidates
// (gateway, untrusted) and untrusted agents of our own site stay listed for
// the site bridge only.
func TestSwarmWatcherPersonalView(t *testing.T) {
	id := func(b byte) [20]byte { var x [20]byte; x[0] = b; return x }
	hexID := func(b byte) string { x := id(b); return hex.EncodeToString(x[:]) }
	ih := id(0xaa)
	var query map[string][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.Query()
		json.NewEncoder(w).Encode(report.SwarmView{Interval: 60, Personal: true, Agents: []report.SwarmMember{
			{PeerID: hexID(1), Site: "a", Region: "eu", Left: 5, Trusted: true, Gateway: true}, // us
			{PeerID: hexID(2), Site: "a", Region: "eu", Left: 5, Trusted: true},                // mate
			{PeerID: hexID(3), Site: "a", Region: "eu", Left: 5},                               // fake of our site
			{PeerID: hexID(4), Site: "b", Region: "eu", Left: 5, Gateway: true},                // open site b: candidate
			{PeerID: hexID(5), Site: "b", Region: "eu", Left: 5, Gateway: true},                // open site b: candidate
			{PeerID: hexID(6), Site: "c", Region: "eu", Left: 5, Trusted: true, Gateway: true}, // reached site c
			{PeerID: hexID(7), Site: "c", Region: "eu", Left: 5},                               // fake of site c
		}})
	}))
	defer srv.Close()
	w := newSwarmWatcher(srv.URL+"/t/announce?role=agent", "a", "eu", ih, srv.Client(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.self = id(1)
	w.connected = func() [][20]byte { return [][20]byte{id(2), id(6)} }
	if err := w.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if query["peer_id"][0] != string(w.self[:]) || query["connected"][0] != hexID(2)+hexID(6) {
		t.Errorf("report not sent: %v", query)
	}
	d, _ := w.downloaders(time.Minute)
	if len(d) != 1 || !d[id(6)] {
		t.Errorf("shard holders from other sites %v, want only trusted agent 6", d)
	}
	if n := w.siteDownloaders(time.Minute); n != 2 {
		t.Errorf("site downloaders %d, want 2 (us and the trusted mate)", n)
	}
	w.mu.Lock()
	_, fake3 := w.members[id(3)]
	_, fake7 := w.members[id(7)]
	_, cand4 := w.members[id(4)]
	w.mu.Unlock()
	if !fake3 || fake7 || !cand4 {
		t.Errorf("kept members: fake3 %v fake7 %v candidate4 %v", fake3, fake7, cand4)
	}
	// During the offload's first seconds (tentativeHold) our trusted mate
	// and the open site's candidates hold shards too; fakes and we do not.
	if tm := w.tentativeMembers(time.Minute); len(tm) != 3 || !tm[id(2)] || !tm[id(4)] || !tm[id(5)] {
		t.Errorf("tentative members %v, want agents 2, 4 and 5", tm)
	}
	w.mu.Lock()
	w.fetched = time.Now().Add(-2 * time.Minute)
	w.mu.Unlock()
	if tm := w.tentativeMembers(time.Minute); len(tm) != 0 {
		t.Errorf("tentative members from a stale list: %v", tm)
	}
}

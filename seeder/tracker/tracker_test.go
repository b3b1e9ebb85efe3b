package tracker

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/prometheus/client_golang/prometheus"
)

// ---- helpers ----------------------------------------------------------------

func hash(s string) [20]byte { return sha1.Sum([]byte(s)) }

func pidString(n int) string { id := pid(n); return string(id[:]) }

func pid(n int) [20]byte {
	var id [20]byte
	copy(id[:], fmt.Sprintf("-SS0001-%012d", n))
	return id
}

// ann describes one announce. Zero strings mean "parameter omitted".
type ann struct {
	ih      [20]byte
	id      [20]byte
	remote  string // r.RemoteAddr
	port    int
	left    int64
	event   string
	numwant string
	compact string
	ip      string
	ident   Identity
	path    string // default /announce
}

func (a ann) values() url.Values {
	v := url.Values{}
	v.Set("info_hash", string(a.ih[:]))
	v.Set("peer_id", string(a.id[:]))
	v.Set("port", strconv.Itoa(a.port))
	v.Set("uploaded", "0")
	v.Set("downloaded", "0")
	v.Set("left", strconv.FormatInt(a.left, 10))
	for k, s := range map[string]string{
		"event": a.event, "numwant": a.numwant, "compact": a.compact, "ip": a.ip,
		"tenant": a.ident.Tenant, "site": a.ident.Site, "region": a.ident.Region, "role": a.ident.Role,
	} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

type dictPeer struct {
	IP     string `bencode:"ip"`
	PeerID string `bencode:"peer id"`
	Port   int    `bencode:"port"`
}

type resp struct {
	Failure     string        `bencode:"failure reason"`
	Interval    int64         `bencode:"interval"`
	MinInterval int64         `bencode:"min interval"`
	Complete    int64         `bencode:"complete"`
	Incomplete  int64         `bencode:"incomplete"`
	Peers       bencode.Bytes `bencode:"peers"`
	Peers6      string        `bencode:"peers6"`

	addrs []netip.AddrPort // compact peers then peers6, in answer order
	dicts []dictPeer       // compact=0 answer
}

// get runs one request through ServeHTTP and returns the raw body.
func get(t testing.TB, tr *Tracker, target, remote string) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	// Refusals are bencoded failures; authorization failures also carry
	// 401/403 (checked in TestAuthorize).
	if rec.Code != http.StatusOK && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusForbidden {
		t.Fatalf("GET %s: status %d", target, rec.Code)
	}
	return rec.Body.Bytes()
}

func status(tr *Tracker, target string) int {
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code
}

func announceRaw(t testing.TB, tr *Tracker, rawQuery, remote string) resp {
	t.Helper()
	return decode(t, get(t, tr, "/announce?"+rawQuery, remote))
}

func (a ann) do(t testing.TB, tr *Tracker) resp {
	t.Helper()
	if a.port == 0 {
		a.port = 6881
	}
	if a.remote == "" {
		a.remote = "192.0.2.1:50000"
	}
	path := a.path
	if path == "" {
		path = "/announce"
	}
	return decode(t, get(t, tr, path+"?"+a.values().Encode(), a.remote))
}

// decode checks the body is one valid bencoded dict and unpacks peers.
func decode(t testing.TB, body []byte) resp {
	t.Helper()
	var generic map[string]any
	if err := bencode.Unmarshal(body, &generic); err != nil {
		t.Fatalf("answer is not a bencoded dict: %v: %q", err, body)
	}
	var r resp
	if err := bencode.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if len(r.Peers) > 0 {
		if r.Peers[0] == 'l' {
			if err := bencode.Unmarshal(r.Peers, &r.dicts); err != nil {
				t.Fatalf("decode peer list: %v", err)
			}
		} else {
			var s string
			if err := bencode.Unmarshal(r.Peers, &s); err != nil {
				t.Fatalf("decode compact peers: %v", err)
			}
			if len(s)%6 != 0 {
				t.Fatalf("compact peers length %d", len(s))
			}
			for i := 0; i < len(s); i += 6 {
				ip := netip.AddrFrom4([4]byte([]byte(s[i : i+4])))
				r.addrs = append(r.addrs, netip.AddrPortFrom(ip, uint16(s[i+4])<<8|uint16(s[i+5])))
			}
		}
	}
	if len(r.Peers6)%18 != 0 {
		t.Fatalf("peers6 length %d", len(r.Peers6))
	}
	for i := 0; i < len(r.Peers6); i += 18 {
		ip := netip.AddrFrom16([16]byte([]byte(r.Peers6[i : i+16])))
		r.addrs = append(r.addrs, netip.AddrPortFrom(ip, uint16(r.Peers6[i+16])<<8|uint16(r.Peers6[i+17])))
	}
	return r
}

func mustOK(t testing.TB, r resp) resp {
	t.Helper()
	if r.Failure != "" {
		t.Fatalf("unexpected failure: %s", r.Failure)
	}
	return r
}

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(cfg Config) (*Tracker, *clock) {
	tr := newTestStore(cfg)
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	tr.now = c.now
	return tr, c
}

// stored counts peers held for ih, stale or not (what the sweep sees).
func stored(tr *Tracker, ih [20]byte) int {
	sh := tr.shard(ih)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	for _, sw := range sh.byHash[ih] {
		n += len(sw.peers)
	}
	return n
}

func gather(t *testing.T, tr *Tracker) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range tr.Collectors() {
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%s}", l.GetName(), l.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// ---- tests ------------------------------------------------------------------

func TestAnnounceRoundTrip(t *testing.T) {
	tr, _ := newTest(Config{Interval: 90 * time.Second})
	ih := hash("release-1")
	id := Identity{Tenant: "acme", Site: "paris", Region: "eu", Role: RoleAgent}

	r := mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1111", port: 7001, left: 0, event: "started", ident: id}.do(t, tr))
	if r.Interval != 90 || r.MinInterval != 45 {
		t.Errorf("interval %d/%d, want 90/45", r.Interval, r.MinInterval)
	}
	if len(r.addrs) != 0 || r.Complete != 1 || r.Incomplete != 0 {
		t.Errorf("first peer: got %v complete=%d incomplete=%d", r.addrs, r.Complete, r.Incomplete)
	}

	r = mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:2222", port: 7002, left: 100, event: "started", ident: id}.do(t, tr))
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:7001")}
	if !slices.Equal(r.addrs, want) {
		t.Errorf("second peer got %v, want %v", r.addrs, want)
	}
	if r.Complete != 1 || r.Incomplete != 1 {
		t.Errorf("complete=%d incomplete=%d, want 1/1", r.Complete, r.Incomplete)
	}

	peers := tr.Peers(ih)
	if len(peers) != 2 || peers[0].ID != pid(1) || peers[1].ID != pid(2) {
		t.Fatalf("Peers = %+v", peers)
	}
	if peers[1].Identity != id || peers[1].Left != 100 || peers[1].Addr.String() != "10.0.0.2:7002" {
		t.Errorf("stored peer %+v", peers[1])
	}
}

func TestIPv6AndNonCompact(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("v6")
	ann{ih: ih, id: pid(1), remote: "[2001:db8::1]:5000", port: 7001, left: 0}.do(t, tr)
	ann{ih: ih, id: pid(2), remote: "[::ffff:10.0.0.2]:5000", port: 7002, left: 0}.do(t, tr) // v4-mapped is stored as v4

	r := mustOK(t, ann{ih: ih, id: pid(3), remote: "10.0.0.3:1", port: 7003, left: 1}.do(t, tr))
	if len(r.Peers6) != 18 || len(r.addrs) != 2 {
		t.Fatalf("compact: peers6 %d bytes, addrs %v", len(r.Peers6), r.addrs)
	}
	if !slices.Contains(r.addrs, netip.MustParseAddrPort("[2001:db8::1]:7001")) ||
		!slices.Contains(r.addrs, netip.MustParseAddrPort("10.0.0.2:7002")) {
		t.Errorf("compact addrs %v", r.addrs)
	}

	r = mustOK(t, ann{ih: ih, id: pid(3), remote: "10.0.0.3:1", port: 7003, left: 1, compact: "0"}.do(t, tr))
	got := map[string]dictPeer{}
	for _, d := range r.dicts {
		got[d.IP] = d
	}
	if len(got) != 2 || got["2001:db8::1"].Port != 7001 || got["2001:db8::1"].PeerID != pidString(1) ||
		got["10.0.0.2"].Port != 7002 || got["10.0.0.2"].PeerID != pidString(2) {
		t.Errorf("non-compact peers %+v", r.dicts)
	}

	q := ann{ih: ih, id: pid(3), port: 7003, left: 1, compact: "0"}.values()
	q.Set("no_peer_id", "1")
	r = mustOK(t, announceRaw(t, tr, q.Encode(), "10.0.0.3:1"))
	if len(r.dicts) != 2 || r.dicts[0].PeerID != "" || r.dicts[1].PeerID != "" {
		t.Errorf("no_peer_id answer %+v", r.dicts)
	}
}

func TestLocalityOrdering(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("ordering")
	// 10 peers: eu/paris x3, eu/berlin x3, us/denver x4.
	type member struct {
		site, region string
		n            int
	}
	tierOf := map[netip.Addr]int{} // relative to a requester in eu/paris
	id := 0
	for tier, m := range []member{{"paris", "eu", 3}, {"berlin", "eu", 3}, {"denver", "us", 4}} {
		for i := 0; i < m.n; i++ {
			id++
			remote := fmt.Sprintf("10.%d.0.%d:1", tier, i+1)
			tierOf[netip.MustParseAddrPort(remote).Addr()] = tier
			mustOK(t, ann{ih: ih, id: pid(id), remote: remote, left: 10,
				ident: Identity{Tenant: "acme", Site: m.site, Region: m.region, Role: RoleAgent}}.do(t, tr))
		}
	}

	me := ann{ih: ih, id: pid(100), remote: "10.9.9.9:1", left: 10,
		ident: Identity{Tenant: "acme", Site: "paris", Region: "eu", Role: RoleAgent}}
	orders := map[string]bool{}
	for range 40 {
		r := mustOK(t, me.do(t, tr))
		if len(r.addrs) != 10 {
			t.Fatalf("got %d peers, want 10", len(r.addrs))
		}
		var tiers []int
		var us []string
		for _, a := range r.addrs {
			tiers = append(tiers, tierOf[a.Addr()])
			if tierOf[a.Addr()] == 2 {
				us = append(us, a.String())
			}
		}
		if !slices.Equal(tiers, []int{0, 0, 0, 1, 1, 1, 2, 2, 2, 2}) {
			t.Fatalf("tiers in answer order %v, want same site, then same region, then the rest", tiers)
		}
		orders[strings.Join(us, ",")] = true
	}
	if len(orders) < 2 {
		t.Errorf("order within a tier never changed over 40 answers: %v", orders)
	}

	// Truncation keeps the nearest tiers.
	me.numwant = "4"
	r := mustOK(t, me.do(t, tr))
	var tiers []int
	for _, a := range r.addrs {
		tiers = append(tiers, tierOf[a.Addr()])
	}
	if !slices.Equal(tiers, []int{0, 0, 0, 1}) {
		t.Errorf("numwant=4 tiers %v, want [0 0 0 1]", tiers)
	}
}

func TestTenantIsolation(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("shared-release")
	for i := range 5 {
		left := int64(0)
		if i >= 3 {
			left = 5
		}
		mustOK(t, ann{ih: ih, id: pid(i), remote: fmt.Sprintf("10.1.0.%d:1", i+1), left: left,
			ident: Identity{Tenant: "a", Site: "s1", Region: "eu", Role: RoleAgent}}.do(t, tr))
	}
	mustOK(t, ann{ih: ih, id: pid(50), remote: "10.2.0.1:1", left: 5,
		ident: Identity{Tenant: "b", Site: "s1", Region: "eu", Role: RoleAgent}}.do(t, tr))
	r := mustOK(t, ann{ih: ih, id: pid(51), remote: "10.2.0.2:1", left: 5,
		ident: Identity{Tenant: "b", Site: "s1", Region: "eu", Role: RoleAgent}}.do(t, tr))
	if want := []netip.AddrPort{netip.MustParseAddrPort("10.2.0.1:6881")}; !slices.Equal(r.addrs, want) {
		t.Errorf("tenant b sees %v, want only %v", r.addrs, want)
	}
	if r.Complete != 0 || r.Incomplete != 2 {
		t.Errorf("tenant b counts %d/%d, want 0/2", r.Complete, r.Incomplete)
	}
	// Same peer ID in another tenant is another peer.
	r = mustOK(t, ann{ih: ih, id: pid(0), remote: "10.3.0.1:1", left: 5, ident: Identity{Tenant: "c"}}.do(t, tr))
	if len(r.addrs) != 0 || r.Complete != 0 || r.Incomplete != 1 {
		t.Errorf("tenant c sees %v %d/%d", r.addrs, r.Complete, r.Incomplete)
	}

	type files struct {
		Files map[string]scrapeFile `bencode:"files"`
	}
	for _, tc := range []struct {
		tenant               string
		complete, incomplete int64
	}{{"a", 3, 2}, {"b", 0, 2}, {"c", 0, 1}, {"", 0, 0}} {
		q := url.Values{"info_hash": {string(ih[:])}}
		if tc.tenant != "" {
			q.Set("tenant", tc.tenant)
		}
		var f files
		if err := bencode.Unmarshal(get(t, tr, "/x/scrape?"+q.Encode(), ""), &f); err != nil {
			t.Fatal(err)
		}
		got := f.Files[string(ih[:])]
		if got.Complete != tc.complete || got.Incomplete != tc.incomplete {
			t.Errorf("scrape tenant %q = %+v, want %d/%d", tc.tenant, got, tc.complete, tc.incomplete)
		}
	}
}

func TestRoleAndSeederFiltering(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("roles")
	origin := netip.MustParseAddrPort("10.0.0.1:6881")
	agentSeed := netip.MustParseAddrPort("10.0.0.2:6881")
	agentLeech := netip.MustParseAddrPort("10.0.0.3:6881")
	foreign := netip.MustParseAddrPort("10.0.0.4:6881")
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", left: 0, ident: Identity{Tenant: "t", Site: "dc", Region: "eu", Role: RoleOrigin}}.do(t, tr))
	mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 0, ident: Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}}.do(t, tr))
	mustOK(t, ann{ih: ih, id: pid(3), remote: "10.0.0.3:1", left: 9, ident: Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}}.do(t, tr))
	mustOK(t, ann{ih: ih, id: pid(4), remote: "10.0.0.4:1", left: 9, ident: Identity{Tenant: "t"}}.do(t, tr))

	for _, tc := range []struct {
		name string
		a    ann
		want []netip.AddrPort
	}{
		{"agent leecher gets no origin", ann{id: pid(3), remote: "10.0.0.3:1", left: 9, ident: Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}},
			[]netip.AddrPort{agentSeed, foreign}},
		{"foreign client gets origin", ann{id: pid(4), remote: "10.0.0.4:1", left: 9, ident: Identity{Tenant: "t"}},
			[]netip.AddrPort{origin, agentSeed, agentLeech}},
		{"seeder gets no seeders", ann{id: pid(2), remote: "10.0.0.2:1", left: 0, ident: Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}},
			[]netip.AddrPort{agentLeech, foreign}},
		// Agents take origin shards over HTTP: the origin's seeder must not
		// dial them, or it becomes an equal source for them.
		{"origin seeder gets foreign leechers only", ann{id: pid(1), remote: "10.0.0.1:1", left: 0, ident: Identity{Tenant: "t", Site: "dc", Region: "eu", Role: RoleOrigin}},
			[]netip.AddrPort{foreign}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.ih = ih
			r := mustOK(t, tc.a.do(t, tr))
			got := slices.Clone(r.addrs)
			slices.SortFunc(got, netip.AddrPort.Compare)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if r.Complete != 2 || r.Incomplete != 2 {
				t.Errorf("counts %d/%d, want 2/2 (filters do not change swarm counts)", r.Complete, r.Incomplete)
			}
		})
	}
}

func TestStoppedRemoves(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("stop")
	id := Identity{Tenant: "t", Role: RoleAgent}
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", left: 5, event: "started", ident: id}.do(t, tr))
	mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 5, event: "started", ident: id}.do(t, tr))
	if m := gather(t, tr); m["swarmship_tracker_active_peers{tenant=t}"] != 2 {
		t.Errorf("active peers gauge %v, want 2", m["swarmship_tracker_active_peers{tenant=t}"])
	}

	r := mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", left: 5, event: "stopped", ident: id}.do(t, tr))
	if len(r.addrs) != 0 {
		t.Errorf("stopped answer carries peers %v", r.addrs)
	}
	r = mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 5, ident: id}.do(t, tr))
	if len(r.addrs) != 0 || r.Incomplete != 1 {
		t.Errorf("after stop: peers %v incomplete %d", r.addrs, r.Incomplete)
	}
	mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 5, event: "stopped", ident: id}.do(t, tr))
	if n := stored(tr, ih); n != 0 {
		t.Errorf("%d peers stored after both stopped", n)
	}
	if len(tr.shard(ih).byHash) != 0 {
		t.Error("empty swarm not forgotten")
	}
	// Stopping an unknown peer is harmless.
	mustOK(t, ann{ih: ih, id: pid(3), remote: "10.0.0.3:1", left: 5, event: "stopped", ident: id}.do(t, tr))

	m := gather(t, tr)
	if _, ok := m["swarmship_tracker_active_peers{tenant=t}"]; ok {
		t.Errorf("gauge still exported for a tenant with no peers: %v", m)
	}
	if m["swarmship_tracker_announces_total{event=started}"] != 2 ||
		m["swarmship_tracker_announces_total{event=stopped}"] != 3 ||
		m["swarmship_tracker_announces_total{event=none}"] != 1 ||
		m["swarmship_tracker_announce_duration_seconds"] != 6 {
		t.Errorf("metrics %v", m)
	}
}

func TestExpiry(t *testing.T) {
	tr, clk := newTest(Config{Interval: 10 * time.Second}) // PeerTTL defaults to 30s
	ih := hash("expiry")
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", left: 5}.do(t, tr))

	clk.add(29 * time.Second)
	r := mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 5}.do(t, tr))
	if len(r.addrs) != 1 {
		t.Fatalf("peer dropped before PeerTTL: %v", r.addrs)
	}

	clk.add(2 * time.Second) // peer 1 is now 31s old
	r = mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 5}.do(t, tr))
	if len(r.addrs) != 0 || r.Incomplete != 1 {
		t.Errorf("stale peer returned: %v incomplete %d", r.addrs, r.Incomplete)
	}
	if p := tr.Peers(ih); len(p) != 1 || p[0].ID != pid(2) {
		t.Errorf("Peers shows stale entries: %+v", p)
	}
	if n := stored(tr, ih); n != 2 {
		t.Fatalf("stored %d before sweep, want 2 (lazy expiry)", n)
	}
	tr.sweep()
	if n := stored(tr, ih); n != 1 {
		t.Errorf("stored %d after sweep, want 1", n)
	}
	if m := gather(t, tr); m["swarmship_tracker_active_peers{tenant=}"] != 1 {
		t.Errorf("gauge after sweep %v", m)
	}

	clk.add(time.Hour)
	tr.sweep()
	if len(tr.shard(ih).byHash) != 0 {
		t.Error("swarm kept after every peer expired")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	tr := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestPeerBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxPeers int
		numwant  string
		want     int
	}{
		{"default numwant and MaxPeers", 0, "", 50},
		{"numwant below MaxPeers", 0, "3", 3},
		{"numwant zero", 0, "0", 0},
		{"MaxPeers caps numwant", 5, "100", 5},
		{"MaxPeers caps default", 7, "", 7},
		{"numwant above swarm", 100, "100", 59},
		{"huge numwant", 0, "999999999999999999", 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := newTest(Config{MaxPeers: tc.maxPeers})
			ih := hash("bounds")
			for i := range 60 {
				if _, err := tr.upsert(tr.shard(ih), ih, "", &entry{id: pid(i), addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1), left: 1, seen: tr.now().UnixNano(), tok: noToken, site: noSite, region: noSite}, false, 0); err != nil {
					t.Fatal(err)
				}
			}
			r := mustOK(t, ann{ih: ih, id: pid(0), remote: "10.0.0.0:1", port: 1, left: 1, numwant: tc.numwant}.do(t, tr))
			if len(r.addrs) != tc.want {
				t.Errorf("got %d peers, want %d", len(r.addrs), tc.want)
			}
			seen := map[netip.AddrPort]bool{}
			for _, a := range r.addrs {
				if seen[a] {
					t.Fatalf("duplicate peer %v", a)
				}
				seen[a] = true
			}
			if r.Incomplete != 60 {
				t.Errorf("incomplete %d, want 60", r.Incomplete)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	ih := hash("malformed")
	good := ann{ih: ih, id: pid(1), port: 6881, left: 5}.values()
	with := func(edit func(v url.Values)) string {
		v := url.Values{}
		for k, s := range good {
			v[k] = slices.Clone(s)
		}
		edit(v)
		return v.Encode()
	}
	for _, tc := range []struct {
		name, query, remote, want string
	}{
		{"short info_hash", with(func(v url.Values) { v.Set("info_hash", string(ih[:19])) }), "", "info_hash"},
		{"long info_hash", with(func(v url.Values) { v.Set("info_hash", string(ih[:])+"x") }), "", "info_hash"},
		{"missing info_hash", with(func(v url.Values) { v.Del("info_hash") }), "", "missing info_hash"},
		{"repeated info_hash", with(func(v url.Values) { v.Add("info_hash", string(ih[:])) }), "", "repeated"},
		{"short peer_id", with(func(v url.Values) { v.Set("peer_id", "abc") }), "", "peer_id"},
		{"port zero", with(func(v url.Values) { v.Set("port", "0") }), "", "port"},
		{"port too big", with(func(v url.Values) { v.Set("port", "65536") }), "", "port"},
		{"port text", with(func(v url.Values) { v.Set("port", "http") }), "", "port"},
		{"port missing", with(func(v url.Values) { v.Del("port") }), "", "port"},
		{"negative left", with(func(v url.Values) { v.Set("left", "-1") }), "", "left"},
		{"plus-signed left", with(func(v url.Values) { v.Set("left", "+5") }), "", "left"},
		{"left missing", with(func(v url.Values) { v.Del("left") }), "", "left"},
		{"left overflow", with(func(v url.Values) { v.Set("left", "9999999999999999999") }), "", "left"},
		{"float uploaded", with(func(v url.Values) { v.Set("uploaded", "1e3") }), "", "uploaded"},
		{"empty downloaded", with(func(v url.Values) { v.Set("downloaded", "") }), "", "downloaded"},
		{"negative numwant", with(func(v url.Values) { v.Set("numwant", "-1") }), "", "numwant"},
		{"unknown event", with(func(v url.Values) { v.Set("event", "paused") }), "", "event"},
		{"bad compact", with(func(v url.Values) { v.Set("compact", "yes") }), "", "compact"},
		{"unknown role", with(func(v url.Values) { v.Set("role", "admin") }), "", "role"},
		{"control char in site", with(func(v url.Values) { v.Set("site", "a\nb") }), "", "site"},
		{"huge tenant", with(func(v url.Values) { v.Set("tenant", strings.Repeat("x", 200)) }), "", "tenant"},
		{"bad escape", good.Encode() + "&x=%zz", "", "malformed"},
		{"semicolon", good.Encode() + ";x=1", "", "malformed"},
		{"garbage", "%%%&&&===", "", "malformed"},
		{"empty query", "", "", "missing"},
		{"unusable remote address", good.Encode(), "pipe", "address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := newTest(Config{})
			remote := tc.remote
			if remote == "" {
				remote = "10.0.0.1:1"
			}
			r := announceRaw(t, tr, tc.query, remote)
			if r.Failure == "" || !strings.Contains(r.Failure, tc.want) {
				t.Errorf("failure reason %q, want one mentioning %q", r.Failure, tc.want)
			}
			if r.Interval != 0 || len(r.Peers) != 0 {
				t.Errorf("refusal carries an answer: %+v", r)
			}
			for i := range tr.shards {
				if len(tr.shards[i].byHash) != 0 {
					t.Fatal("malformed announce stored something")
				}
			}
			if m := gather(t, tr); m["swarmship_tracker_refusals_total{reason=malformed}"] != 1 {
				t.Errorf("refusal not counted: %v", m)
			}
		})
	}

	// The well-formed base query really is accepted (the table tests what it thinks).
	tr, _ := newTest(Config{})
	mustOK(t, announceRaw(t, tr, good.Encode()+"&event=empty&key=abc&supportcrypto=1", "10.0.0.1:1"))
	if len(tr.Peers(ih)) != 1 {
		t.Error("valid announce not stored")
	}
}

func TestResidency(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("eu-only")
	other := hash("anywhere")
	eu := Identity{Tenant: "t", Site: "paris", Region: "eu", Role: RoleAgent}
	us := Identity{Tenant: "t", Site: "denver", Region: "us", Role: RoleAgent}

	// Stored before the restriction: the us peer must vanish when it comes.
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", left: 0, ident: us}.do(t, tr))
	mustOK(t, ann{ih: ih, id: pid(2), remote: "10.0.0.2:1", left: 0, ident: eu}.do(t, tr))
	tr.SetAllowedRegions(ih, []string{"eu", "eu-west"})
	if p := tr.Peers(ih); len(p) != 1 || p[0].Identity.Region != "eu" {
		t.Errorf("after restriction Peers = %+v", p)
	}

	for _, tc := range []struct {
		name string
		a    ann
		want string // failure substring, "" = accepted
	}{
		{"outside region", ann{ih: ih, id: pid(3), ident: us, left: 5}, "release not allowed in region us"},
		{"foreign client", ann{ih: ih, id: pid(4), ident: Identity{Tenant: "t"}, left: 5}, "release not allowed in region"},
		{"allowed region", ann{ih: ih, id: pid(5), remote: "10.0.0.5:1", ident: eu, left: 5}, ""},
		{"second allowed region", ann{ih: ih, id: pid(6), remote: "10.0.0.6:1", ident: Identity{Tenant: "t", Region: "eu-west"}, left: 5}, ""},
		{"unrestricted release", ann{ih: other, id: pid(7), ident: us, left: 5}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.a.do(t, tr)
			if tc.want == "" {
				mustOK(t, r)
				for _, a := range r.addrs {
					if a.Addr() == netip.MustParseAddr("10.0.0.1") {
						t.Error("peer outside allowed regions returned")
					}
				}
				return
			}
			if !strings.Contains(r.Failure, tc.want) {
				t.Errorf("failure %q, want %q", r.Failure, tc.want)
			}
			for _, p := range tr.Peers(tc.a.ih) {
				if p.ID == tc.a.id {
					t.Error("refused peer stored")
				}
			}
		})
	}

	// Scrape from the wrong region does not see the release.
	q := url.Values{"info_hash": {string(ih[:])}, "tenant": {"t"}, "region": {"us"}}
	var f struct {
		Files map[string]scrapeFile `bencode:"files"`
	}
	if err := bencode.Unmarshal(get(t, tr, "/scrape?"+q.Encode(), ""), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Files) != 0 {
		t.Errorf("scrape from us lists an eu-only release: %v", f.Files)
	}

	// Lifting the restriction lets us peers in again.
	tr.SetAllowedRegions(ih, nil)
	mustOK(t, ann{ih: ih, id: pid(3), ident: us, left: 5}.do(t, tr))
	if m := gather(t, tr); m["swarmship_tracker_refusals_total{reason=residency}"] != 2 {
		t.Errorf("residency refusals %v", m["swarmship_tracker_refusals_total{reason=residency}"])
	}
}

func TestAuthorize(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("auth")
	var seen []Identity
	var mu sync.Mutex
	tr.Authorize(func(r *http.Request, id Identity) error {
		mu.Lock()
		seen = append(seen, id)
		mu.Unlock()
		switch r.URL.Query().Get("token") {
		case "good":
			return nil
		case "":
			return fmt.Errorf("%w: no token", ErrUnauthenticated)
		}
		return errors.New("bad token")
	})
	id := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}
	q := ann{ih: ih, id: pid(1), port: 6881, left: 5, ident: id}.values()

	q.Set("token", "bad")
	r := announceRaw(t, tr, q.Encode(), "10.0.0.1:1")
	if r.Failure != "bad token" {
		t.Errorf("failure %q, want %q", r.Failure, "bad token")
	}
	if stored(tr, ih) != 0 {
		t.Fatal("refused announce stored a peer")
	}
	if c := status(tr, "/announce?"+q.Encode()); c != http.StatusForbidden {
		t.Errorf("bad token: status %d, want 403", c)
	}
	q.Del("token")
	if c := status(tr, "/announce?"+q.Encode()); c != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", c)
	}
	q.Set("token", "bad")
	// Scrape goes through the hook too.
	sq := url.Values{"info_hash": {string(ih[:])}, "tenant": {"t"}, "token": {"bad"}}
	if r := decode(t, get(t, tr, "/scrape?"+sq.Encode(), "")); r.Failure != "bad token" {
		t.Errorf("scrape failure %q", r.Failure)
	}
	// So does the swarm view, which lists agents' addresses.
	if c := status(tr, "/swarm?"+sq.Encode()); c != http.StatusForbidden {
		t.Errorf("swarm view with a bad token: status %d, want 403", c)
	}
	sq.Del("token")
	if c := status(tr, "/swarm?"+sq.Encode()); c != http.StatusUnauthorized {
		t.Errorf("swarm view without a token: status %d, want 401", c)
	}
	sq.Set("token", "good")
	if c := status(tr, "/swarm?"+sq.Encode()); c != http.StatusOK {
		t.Errorf("swarm view with a good token: status %d, want 200", c)
	}

	q.Set("token", "good")
	mustOK(t, announceRaw(t, tr, q.Encode(), "10.0.0.1:1"))
	if stored(tr, ih) != 1 {
		t.Error("authorized announce not stored")
	}
	if len(seen) != 8 || seen[0] != id { // 4 announces, 1 scrape, 3 swarm views
		t.Errorf("hook saw %+v", seen)
	}

	tr.Authorize(nil)
	mustOK(t, ann{ih: ih, id: pid(2), left: 5}.do(t, tr))
}

func TestScrape(t *testing.T) {
	tr, _ := newTest(Config{})
	a, b := hash("a"), hash("b")
	id := Identity{Tenant: "t"}
	mustOK(t, ann{ih: a, id: pid(1), left: 5, event: "started", ident: id}.do(t, tr))
	mustOK(t, ann{ih: a, id: pid(1), left: 0, event: "completed", ident: id}.do(t, tr))
	mustOK(t, ann{ih: a, id: pid(2), remote: "10.0.0.2:1", left: 5, ident: id}.do(t, tr))

	q := url.Values{"info_hash": {string(a[:]), string(b[:])}, "tenant": {"t"}}
	var f struct {
		Files map[string]scrapeFile `bencode:"files"`
	}
	if err := bencode.Unmarshal(get(t, tr, "/scrape?"+q.Encode(), ""), &f); err != nil {
		t.Fatal(err)
	}
	if got := f.Files[string(a[:])]; got != (scrapeFile{Complete: 1, Downloaded: 1, Incomplete: 1}) {
		t.Errorf("scrape a = %+v", got)
	}
	if got, ok := f.Files[string(b[:])]; !ok || got != (scrapeFile{}) {
		t.Errorf("scrape b = %+v, %v", got, ok)
	}

	for _, tc := range []struct{ name, query, want string }{
		{"no info_hash lists nothing", "tenant=t", "requires at least one info_hash"},
		{"short info_hash", "info_hash=abc", "info_hash"},
		{"bad escape", "info_hash=%zz", "malformed"},
		{"too many", strings.Repeat("info_hash="+url.QueryEscape(string(a[:]))+"&", maxScrapeList+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := decode(t, get(t, tr, "/scrape?"+tc.query, "")); !strings.Contains(r.Failure, tc.want) {
				t.Errorf("failure %q, want %q", r.Failure, tc.want)
			}
		})
	}
}

func TestRoutingAndAddress(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("routing")
	q := ann{ih: ih, id: pid(1), port: 7000, left: 5}.values().Encode()

	for _, tc := range []struct {
		method, target string
		code           int
	}{
		{http.MethodGet, "/announce?" + q, 200},
		{http.MethodGet, "/tracker/v1/announce?" + q, 200},
		{http.MethodGet, "/tracker/scrape?info_hash=" + url.QueryEscape(string(ih[:])), 200},
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/announcement?" + q, 404},
		{http.MethodPost, "/announce?" + q, 405},
		{http.MethodHead, "/announce?" + q, 405},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, rec.Code, tc.code)
		}
	}

	// ip= counts only from loopback, and only for loopback/private addresses.
	for _, tc := range []struct{ remote, ip, want string }{
		{"127.0.0.1:1", "10.1.2.3", "10.1.2.3:7000"},
		{"[::1]:1", "192.168.5.5", "192.168.5.5:7000"},
		{"127.0.0.1:1", "8.8.8.8", "127.0.0.1:7000"},
		{"203.0.113.9:1", "10.1.2.3", "203.0.113.9:7000"},
		{"127.0.0.1:1", "not-an-ip", "127.0.0.1:7000"},
	} {
		tr, _ := newTest(Config{TrustIPParam: true})
		mustOK(t, ann{ih: ih, id: pid(1), remote: tc.remote, port: 7000, left: 5, ip: tc.ip}.do(t, tr))
		if p := tr.Peers(ih); len(p) != 1 || p[0].Addr.String() != tc.want {
			t.Errorf("remote %s ip=%s: stored %+v, want %s", tc.remote, tc.ip, p, tc.want)
		}
	}
}

// TestConcurrent drives announces, stops, scrapes, sweeps, residency changes
// and metric collection at once; run with -race. Workers report failures on a
// channel (t.Fatalf must run on the test goroutine) and the test then checks
// that the swarms hold exactly the peers whose last announce was not a stop.
func TestConcurrent(t *testing.T) {
	tr, _ := newTest(Config{})
	ihs := [][20]byte{hash("c1"), hash("c2"), hash("c3")}
	const workers, rounds, peersPerWorker = 8, 300, 40
	errs := make(chan error, workers*rounds+100)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ih := ihs[i%len(ihs)]
				ev := ""
				if i%7 == 0 {
					ev = "stopped"
				}
				a := ann{ih: ih, id: pid(g*1000 + i%peersPerWorker), port: 6881,
					remote: fmt.Sprintf("10.%d.0.%d:1", g, i%peersPerWorker), left: int64(i % 3), event: ev,
					ident: Identity{Tenant: fmt.Sprint("t", g%2), Site: fmt.Sprint("s", i%3), Region: "eu", Role: RoleAgent}}
				if err := serveOK(tr, "/announce?"+a.values().Encode(), a.remote); err != nil {
					errs <- fmt.Errorf("worker %d announce %d: %w", g, i, err)
				}
				if i%50 == 0 {
					if err := serveOK(tr, "/scrape?info_hash="+url.QueryEscape(string(ih[:])), ""); err != nil {
						errs <- fmt.Errorf("worker %d scrape %d: %w", g, i, err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			tr.sweep()
			tr.Peers(ihs[0])
			if i%10 == 0 {
				tr.SetAllowedRegions(ihs[1], []string{"eu"})
			}
			reg := prometheus.NewRegistry()
			for _, c := range tr.Collectors() {
				reg.MustRegister(c)
			}
			if _, err := reg.Gather(); err != nil {
				errs <- fmt.Errorf("gather %d: %w", i, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The clock does not move, so nothing goes stale: a peer is in a swarm
	// exactly when its last announce there was not a stop.
	for n, ih := range ihs {
		want := map[[20]byte]bool{}
		for g := range workers {
			last := map[int]int{} // peer -> last round announcing to ih
			for i := range rounds {
				if i%len(ihs) == n {
					last[i%peersPerWorker] = i
				}
			}
			for p, i := range last {
				if i%7 != 0 {
					want[pid(g*1000+p)] = true
				}
			}
		}
		got := map[[20]byte]bool{}
		for _, p := range tr.Peers(ih) {
			if got[p.ID] {
				t.Errorf("swarm %d: peer %q listed twice", n, p.ID)
			}
			got[p.ID] = true
		}
		if len(got) != len(want) {
			t.Errorf("swarm %d: %d peers, want %d", n, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Errorf("swarm %d: peer %q missing", n, id)
			}
		}
	}
}

// serveOK is get for worker goroutines: it returns what went wrong instead
// of failing the test, and refuses bencoded failures.
func serveOK(tr *Tracker, target, remote string) error {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", target, rec.Code)
	}
	var v map[string]any
	if err := bencode.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		return fmt.Errorf("GET %s: answer is not a bencoded dict: %v", target, err)
	}
	if reason, failed := v["failure reason"]; failed {
		return fmt.Errorf("GET %s: failure %v", target, reason)
	}
	return nil
}

// ---- fuzz and benchmark -----------------------------------------------------

func FuzzAnnounceQuery(f *testing.F) {
	ih := hash("fuzz")
	f.Add(ann{ih: ih, id: pid(1), port: 6881, left: 5, event: "started", ident: Identity{Tenant: "t", Site: "s", Region: "r", Role: RoleAgent}}.values().Encode())
	f.Add(ann{ih: ih, id: pid(2), port: 1, left: 0, compact: "0", numwant: "3"}.values().Encode())
	f.Add("info_hash=%00%01&peer_id=x&port=-1")
	f.Add("%")
	f.Add("")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=65535&left=99999999999999999999")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=aaaaaaaaaaaaaaaaaaaa")
	tr, _ := newTest(Config{})
	f.Fuzz(func(t *testing.T, q string) {
		a, err := parseAnnounce(q)
		if err == nil {
			if a.port == 0 || a.left < 0 || a.uploaded < 0 || a.downloaded < 0 || a.numWant < -1 {
				t.Fatalf("accepted invalid announce %+v from %q", a, q)
			}
		}
		// The whole handler must answer with valid bencode, whatever q is.
		req := httptest.NewRequest(http.MethodGet, "/announce", nil)
		req.URL.RawQuery = q
		req.RemoteAddr = "10.0.0.1:1"
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		var v map[string]any
		if err := bencode.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("invalid bencode answer %q for %q: %v", rec.Body.Bytes(), q, err)
		}
		reason, failed := v["failure reason"].(string)
		if err != nil && !failed {
			t.Fatalf("parse error %v but answer %q", err, rec.Body.Bytes())
		}
		// A well-formed announce may still be refused, but only by the
		// limits on what one address may hold (every input here comes from
		// one address) or by a peer ID another identity holds.
		if err == nil && failed && !strings.Contains(reason, "(cap ") && !strings.Contains(reason, "peer_id is in use") {
			t.Fatalf("well-formed %q refused: %q", q, reason)
		}
	})
}

// discard is a minimal ResponseWriter so the benchmark measures the tracker,
// not httptest.ResponseRecorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkAnnounce: regular re-announces into one swarm of 1000 peers
// (10 sites of 100 in 3 regions, a third seeders), each answered with up to
// 50 peers, from concurrent goroutines.
// Run with -cpu 1 for the single-core figure.
func BenchmarkAnnounce(b *testing.B) {
	tr := New(Config{})
	ih := hash("bench")
	const swarmSize = 1000
	reqs := make([]*http.Request, swarmSize)
	for i := range swarmSize {
		left := int64(1 << 20)
		if i%3 == 0 {
			left = 0
		}
		a := ann{ih: ih, id: pid(i), port: 6881, left: left,
			ident: Identity{Tenant: "acme", Site: fmt.Sprint("site", i%10), Region: fmt.Sprint("region", i%10%3), Role: RoleAgent}}
		req := httptest.NewRequest(http.MethodGet, "/announce?"+a.values().Encode(), nil)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:6881", i>>16&255, i>>8&255, i&255)
		reqs[i] = req
		tr.ServeHTTP(&discard{h: http.Header{}}, req)
	}
	if n := len(tr.Peers(ih)); n != swarmSize {
		b.Fatalf("swarm has %d peers", n)
	}
	var next sync.Mutex
	start := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		i := start
		start += 97
		next.Unlock()
		w := &discard{h: http.Header{}}
		for pb.Next() {
			tr.ServeHTTP(w, reqs[i%swarmSize])
			i++
		}
	})
	if cpu := processCPU() - cpu0; cpu > 0 {
		// CPU time per announce, immune to other processes' load (GC included).
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
}

func TestLocalityRestrictsAnswer(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("locality")
	peers := []struct {
		remote string
		id     Identity
	}{
		{"10.0.1.1:1", Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}},
		{"10.0.1.2:1", Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}},
		{"10.0.2.1:1", Identity{Tenant: "t", Site: "b", Region: "eu", Role: RoleAgent}},
		{"10.0.3.1:1", Identity{Tenant: "t", Site: "c", Region: "us", Role: RoleAgent}},
	}
	for i, p := range peers {
		mustOK(t, ann{ih: ih, id: pid(i + 1), remote: p.remote, left: 9, ident: p.id}.do(t, tr))
	}
	self := Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}
	for _, tc := range []struct {
		locality string
		want     int
	}{{"site", 1}, {"region", 2}, {"any", 3}, {"", 3}} {
		q := ann{ih: ih, id: pid(1), port: 6881, left: 9, ident: self}.values()
		if tc.locality != "" {
			q.Set("locality", tc.locality)
		}
		r := announceRaw(t, tr, q.Encode(), "10.0.1.1:1")
		if len(r.addrs) != tc.want {
			t.Errorf("locality %q: %d peers %v, want %d", tc.locality, len(r.addrs), r.addrs, tc.want)
		}
	}
	q := ann{ih: ih, id: pid(1), port: 6881, left: 9, ident: self}.values()
	q.Set("locality", "planet")
	if r := announceRaw(t, tr, q.Encode(), "10.0.1.1:1"); !strings.Contains(r.Failure, "locality") {
		t.Errorf("bad locality accepted: %+v", r)
	}
}

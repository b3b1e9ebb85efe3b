package tracker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unique"

	"github.com/swarmship/swarmship/internal/report"
)

// Attacks of issue 12 item 6, each reproduced and shown harmless.

// allowlist is a Catalog over a fixed set of (tenant, infohash).
type allowlist struct {
	mu sync.Mutex
	m  map[swarmKey]bool
}

func (a *allowlist) Allows(tenant string, ih [20]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[swarmKey{ih, tenant}]
}

func (a *allowlist) set(keys ...swarmKey) {
	a.mu.Lock()
	a.m = map[swarmKey]bool{}
	for _, k := range keys {
		a.m[k] = true
	}
	a.mu.Unlock()
}

func TestCapFakePeersFromOneAddress(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("release")
	site := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}
	// 10,000 fake peers from one address, as in the attack.
	var refused int
	var reason string
	for i := range 10000 {
		r := ann{ih: ih, id: pid(i), remote: "203.0.113.7:40000", port: 10000 + i%50000, left: 5, ident: site}.do(t, tr)
		if r.Failure != "" {
			refused++
			reason = r.Failure
		}
	}
	if n := stored(tr, ih); n != defaultPeersPerAddress {
		t.Errorf("stored %d peers from one address, want the cap %d", n, defaultPeersPerAddress)
	}
	if refused != 10000-defaultPeersPerAddress || !strings.Contains(reason, "too many peers from this address") {
		t.Errorf("refused %d (last reason %q)", refused, reason)
	}
	// Another address is not hurt by the first one's flood.
	if r := (ann{ih: ih, id: pid(20000), remote: "198.51.100.1:1", left: 5, ident: site}).do(t, tr); r.Failure != "" {
		t.Errorf("an honest peer was refused: %s", r.Failure)
	}
}

func TestCapsPerToken(t *testing.T) {
	tr, _ := newTest(Config{MaxPeersPerToken: 3, MaxSwarmsPerToken: 2, MaxPeersPerAddress: -1, MaxSwarmsPerAddress: 2})
	site := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}
	do := func(ih [20]byte, n int, remote, tok string) resp {
		q := ann{ih: ih, id: pid(n), port: 6881, left: 5, ident: site}.values()
		req := httptest.NewRequest(http.MethodGet, "/announce?"+q.Encode(), nil)
		req.RemoteAddr = remote
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		return decode(t, rec.Body.Bytes())
	}
	ih1, ih2, ih3 := hash("r1"), hash("r2"), hash("r3")
	// One token, many addresses: the token's cap holds.
	for i := range 5 {
		r := do(ih1, i, fmt.Sprintf("10.0.0.%d:1", i+1), "tok-A")
		if wantOK := i < 3; (r.Failure == "") != wantOK {
			t.Errorf("peer %d of token A: failure %q", i, r.Failure)
		}
	}
	if r := do(ih1, 10, "10.0.1.1:1", "tok-B"); r.Failure != "" {
		t.Errorf("another token was refused: %s", r.Failure)
	}
	// Swarms per token and per address.
	if r := do(ih2, 20, "10.0.2.1:1", "tok-A"); r.Failure != "" {
		t.Errorf("second swarm of token A: %s", r.Failure)
	}
	if r := do(ih3, 21, "10.0.2.2:1", "tok-A"); !strings.Contains(r.Failure, "too many swarms from this token") {
		t.Errorf("third swarm of token A: %q", r.Failure)
	}
	if r := do(ih2, 30, "10.0.9.9:1", ""); r.Failure != "" {
		t.Fatal(r.Failure)
	}
	if r := do(ih3, 31, "10.0.9.9:1", ""); r.Failure != "" {
		t.Fatal(r.Failure)
	}
	if r := do(ih1, 32, "10.0.9.9:1", ""); !strings.Contains(r.Failure, "too many swarms from this address") {
		t.Errorf("third swarm of one address: %q", r.Failure)
	}
	// Leaving frees the slot.
	q := ann{ih: ih3, id: pid(31), port: 6881, left: 5, event: "stopped", ident: site}
	if r := q.do(t, tr); r.Failure == "" {
		t.Errorf("a stop from another address removed peer 31")
	}
	req := httptest.NewRequest(http.MethodGet, "/announce?"+q.values().Encode(), nil)
	req.RemoteAddr = "10.0.9.9:1"
	tr.ServeHTTP(httptest.NewRecorder(), req)
	if r := do(ih1, 32, "10.0.9.9:1", ""); r.Failure != "" {
		t.Errorf("after leaving a swarm: %q", r.Failure)
	}
}

func TestTotalPeersCap(t *testing.T) {
	tr, _ := newTest(Config{MaxTotalPeers: 100})
	for i := range 150 {
		ann{ih: hash(fmt.Sprint(i % 7)), id: pid(i), remote: fmt.Sprintf("10.1.%d.%d:1", i/256, i%256), left: 1}.do(t, tr)
	}
	if n := tr.Stored(); n != 100 {
		t.Errorf("stored %d peers, want the cap 100", n)
	}
	tr.now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	tr.sweep()
	if n := tr.Stored(); n != 0 {
		t.Errorf("after everyone expired, %d peers counted", n)
	}
	if len(tr.lim.addrs) != 0 || len(tr.lim.toks) != 0 {
		t.Errorf("cap tables not emptied: %d addresses, %d tokens", len(tr.lim.addrs), len(tr.lim.toks))
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func TestUnknownInfoHashesRefused(t *testing.T) {
	tr, _ := newTest(Config{MaxPeersPerAddress: -1, MaxSwarmsPerAddress: -1})
	cat := &allowlist{}
	real := hash("app@1.0")
	cat.set(swarmKey{real, "t"})
	tr.SetCatalog(cat)
	id := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}

	before := heapInUse()
	for i := range 20000 {
		var ih [20]byte
		rand.Read(ih[:])
		r := ann{ih: ih, id: pid(i), remote: fmt.Sprintf("10.2.%d.%d:1", i/256%256, i%256), left: 1, ident: id}.do(t, tr)
		if r.Failure != "unknown info_hash" {
			t.Fatalf("random infohash %d: %q", i, r.Failure)
		}
	}
	grew := int64(heapInUse()) - int64(before)
	runtime.KeepAlive(tr)
	t.Logf("heap after 20,000 random infohashes: %+d KiB", grew/1024)
	if n := tr.Stored(); n != 0 {
		t.Errorf("%d peers stored for unknown infohashes", n)
	}
	if grew > 1<<20 {
		t.Errorf("heap grew by %d KiB for refused announces", grew/1024)
	}
	// The release's own tenant is admitted, another tenant is not; scrape
	// and swarm view leave unknown ones out.
	mustOK(t, ann{ih: real, id: pid(1), remote: "10.3.0.1:1", left: 1, ident: id}.do(t, tr))
	if r := (ann{ih: real, id: pid(2), remote: "10.3.0.2:1", left: 1, ident: Identity{Tenant: "u"}}).do(t, tr); r.Failure != "unknown info_hash" {
		t.Errorf("another tenant: %q", r.Failure)
	}
	other := hash("nope")
	body := get(t, tr, "/scrape?"+url.Values{"info_hash": {string(real[:]), string(other[:])}, "tenant": {"t"}}.Encode(), "10.3.0.3:1")
	if !strings.Contains(string(body), string(real[:])) || strings.Contains(string(body), string(other[:])) {
		t.Errorf("scrape: %q", body)
	}
	if r := decode(t, get(t, tr, "/swarm?"+url.Values{"info_hash": {string(other[:])}, "tenant": {"t"}}.Encode(), "10.3.0.3:1")); r.Failure != "unknown info_hash" {
		t.Errorf("swarm view of an unknown infohash: %q", r.Failure)
	}
	// The release leaves the catalog: its swarm goes at once.
	cat.set()
	tr.CatalogChanged()
	if n := tr.Stored(); n != 0 {
		t.Errorf("%d peers kept after the release left the catalog", n)
	}
}

// reloader allows an infohash only after a reload.
type reloader struct {
	allowlist
	next    swarmKey
	reloads int
}

func (r *reloader) Reload(context.Context) bool {
	r.reloads++
	r.set(r.next)
	return true
}

func TestUnknownInfoHashReloadsCatalog(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("new")
	cat := &reloader{next: swarmKey{ih, ""}}
	cat.set()
	tr.SetCatalog(cat)
	mustOK(t, ann{ih: ih, id: pid(1), left: 1}.do(t, tr))
	if cat.reloads != 1 {
		t.Errorf("%d reloads, want 1", cat.reloads)
	}
}

func TestPeerIDHijackRefused(t *testing.T) {
	tr, clk := newTest(Config{})
	ih := hash("hijack")
	site := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}
	victim := ann{ih: ih, id: pid(1), remote: "10.0.0.1:5000", port: 6881, left: 7, ident: site}
	mustOK(t, victim.do(t, tr))
	for _, tc := range []struct {
		name string
		a    ann
	}{
		{"re-announce from another address", ann{ih: ih, id: pid(1), remote: "10.6.6.6:1", port: 9999, left: 0, ident: site}},
		{"stop from another address", ann{ih: ih, id: pid(1), remote: "10.6.6.6:1", port: 9999, left: 0, event: "stopped", ident: site}},
		{"same address, other site", ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", port: 9999, left: 0, ident: Identity{Tenant: "t", Site: "x", Region: "eu", Role: RoleAgent}}},
		{"same address, other role", ann{ih: ih, id: pid(1), remote: "10.0.0.1:1", port: 9999, left: 0, ident: Identity{Tenant: "t", Site: "s", Region: "eu"}}},
	} {
		if r := tc.a.do(t, tr); !strings.Contains(r.Failure, "peer_id is in use") {
			t.Errorf("%s: %q", tc.name, r.Failure)
		}
		p := tr.Peers(ih)
		if len(p) != 1 || p[0].Addr.String() != "10.0.0.1:6881" || p[0].Left != 7 || p[0].Identity != site {
			t.Fatalf("%s: entry changed to %+v", tc.name, p)
		}
	}
	// A report (swarm view) under the victim's ID from elsewhere is refused.
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {pidString(1)}, "tenant": {"t"}, "site": {"s"}, "region": {"eu"}, "role": {RoleAgent}}
	if r := decode(t, get(t, tr, "/swarm?"+q.Encode(), "10.6.6.6:1")); !strings.Contains(r.Failure, "peer_id is in use") {
		t.Errorf("report from another address: %q", r.Failure)
	}
	// The victim itself may change port and stop.
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.0.0.1:5001", port: 6882, left: 3, ident: site}.do(t, tr))
	if p := tr.Peers(ih); len(p) != 1 || p[0].Addr.String() != "10.0.0.1:6882" {
		t.Errorf("owner's port change: %+v", p)
	}
	// Once the victim's entry expires, the ID is free again.
	clk.add(time.Hour)
	mustOK(t, ann{ih: ih, id: pid(1), remote: "10.6.6.6:1", port: 9999, left: 0, ident: site}.do(t, tr))
	if p := tr.Peers(ih); len(p) != 1 || p[0].Addr.String() != "10.6.6.6:9999" {
		t.Errorf("after expiry: %+v", p)
	}
}

func TestIPParamIgnoredByDefault(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("ip")
	mustOK(t, ann{ih: ih, id: pid(1), remote: "127.0.0.1:1", port: 7000, left: 5, ip: "10.9.9.9"}.do(t, tr))
	if p := tr.Peers(ih); len(p) != 1 || p[0].Addr.String() != "127.0.0.1:7000" {
		t.Errorf("ip= from loopback was honoured without trust_ip_param: %+v", p)
	}
}

// viewFor asks for n's swarm view with its report of connections.
func viewFor(t *testing.T, tr *Tracker, ih [20]byte, n int, id Identity, remote string, connected ...int) report.SwarmView {
	t.Helper()
	var c strings.Builder
	for _, m := range connected {
		p := pid(m)
		c.WriteString(hex.EncodeToString(p[:]))
	}
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {pidString(n)}, "connected": {c.String()},
		"tenant": {id.Tenant}, "site": {id.Site}, "region": {id.Region}, "role": {id.Role}}
	body := get(t, tr, "/swarm?"+q.Encode(), remote)
	var v report.SwarmView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("view: %q: %v", body, err)
	}
	return v
}

// TestFakeAnnouncersNeverWinGateways: 2,000 fake agents (spread over 40
// addresses so that the caps do not stop them; with one token or none)
// announce in both sites before the real ones, and report each other as
// connected. The real agents still elect each other and never trust a fake.
func TestFakeAnnouncersNeverWinGateways(t *testing.T) {
	tr, clk := newTest(Config{})
	ih := hash("promoted")
	siteA := Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}
	siteB := Identity{Tenant: "t", Site: "b", Region: "eu", Role: RoleAgent}
	fakeAddr := func(i int) string { return fmt.Sprintf("10.66.%d.1:%d", i%40, 1000+i) }
	const fakes = 2000
	for i := range fakes {
		id := siteA
		if i%2 == 1 {
			id = siteB
		}
		mustOK(t, ann{ih: ih, id: pid(100000 + i), remote: fakeAddr(i), port: 1000 + i, left: 9, ident: id}.do(t, tr))
	}
	for i := range fakes { // each fake vouches for the next ones of its site
		id := siteA
		if i%2 == 1 {
			id = siteB
		}
		if i < 20 { // a few through HTTP; the rest directly, for speed
			viewFor(t, tr, ih, 100000+i, id, fakeAddr(i), 100000+(i+2)%fakes, 100000+(i+4)%fakes)
			continue
		}
		ap := netip.MustParseAddrPort(fakeAddr(i))
		e := entry{id: pid(100000 + i), addr: netip.AddrPortFrom(ap.Addr(), 0), tok: noToken, site: unique.Make(id.Site), region: unique.Make(id.Region), role: roleAgent}
		if ok, err := tr.storeReport(tr.shard(ih), ih, "t", &e, [][20]byte{pid(100000 + (i+2)%fakes), pid(100000 + (i+4)%fakes)}, 0); !ok || err != nil {
			t.Fatalf("fake report %d: %v %v", i, ok, err)
		}
	}
	clk.add(time.Second)
	// Real agents: a1, a2 in site a (addresses 10.0.0.x), b1, b2 in site b.
	real := map[int]Identity{1: siteA, 2: siteA, 3: siteB, 4: siteB}
	remote := func(n int) string { return fmt.Sprintf("10.0.0.%d:6881", n) }
	for n := 1; n <= 4; n++ {
		mustOK(t, ann{ih: ih, id: pid(n), remote: remote(n), left: 9, ident: real[n]}.do(t, tr))
		clk.add(time.Second)
	}
	members := func(v report.SwarmView) map[int]report.SwarmMember {
		out := map[int]report.SwarmMember{}
		for _, m := range v.Agents {
			for n := 1; n <= 4; n++ {
				if p := pid(n); m.PeerID == hex.EncodeToString(p[:]) {
					out[n] = m
				}
			}
		}
		return out
	}
	checkNoFake := func(stage string, v report.SwarmView) {
		t.Helper()
		if !v.Personal {
			t.Fatalf("%s: view is not personal", stage)
		}
		for _, m := range v.Agents {
			if strings.HasPrefix(m.Addr, "10.66.") && m.Trusted {
				t.Fatalf("%s: fake %s trusted", stage, m.Addr)
			}
		}
	}

	// Start: a1 has connected to nobody yet. Its own site's gateway is
	// itself (the only agent it trusts), site b is open: b1 and b2 are
	// candidates, as are the fakes, so a1 can reach the real ones.
	v := viewFor(t, tr, ih, 1, siteA, remote(1))
	checkNoFake("start", v)
	m := members(v)
	if !m[1].Gateway || !m[3].Gateway || !m[4].Gateway || m[2].Gateway {
		t.Errorf("start: gateways %+v", m)
	}
	// Inside each site the real agents connect (the tracker hands them
	// their site's peers), then a1 reaches b1 across.
	viewFor(t, tr, ih, 2, siteA, remote(2), 1)
	viewFor(t, tr, ih, 3, siteB, remote(3), 4, 1)
	viewFor(t, tr, ih, 4, siteB, remote(4), 3)
	v = viewFor(t, tr, ih, 1, siteA, remote(1), 2, 3)
	checkNoFake("connected", v)
	m = members(v)
	for n := 1; n <= 4; n++ {
		if !m[n].Trusted {
			t.Errorf("connected: real agent %d not trusted", n)
		}
	}
	if !m[1].Gateway || m[2].Gateway || !m[3].Gateway || m[4].Gateway {
		t.Errorf("connected: gateways %+v, want a1 and b1", m)
	}
	for _, mm := range v.Agents {
		if strings.HasPrefix(mm.Addr, "10.66.") && mm.Gateway {
			t.Fatalf("connected: fake %s is a gateway", mm.Addr)
		}
	}
	// The other real agents see the same gateways, and the announce
	// answers follow: a1 (gateway) gets a2 and b1 and no fake of site b;
	// b2 (member) gets only its own site.
	for _, n := range []int{2, 3, 4} {
		mm := members(viewFor(t, tr, ih, n, real[n], remote(n), map[int][]int{2: {1}, 3: {4, 1}, 4: {3}}[n]...))
		if !mm[1].Gateway || !mm[3].Gateway || mm[2].Gateway || mm[4].Gateway {
			t.Errorf("agent %d sees gateways %+v", n, mm)
		}
	}
	q := ann{ih: ih, id: pid(1), port: 6881, left: 9, ident: siteA}.values()
	q.Set("locality", "gateway")
	q.Set("numwant", "5000")
	r := mustOK(t, announceRaw(t, tr, q.Encode(), remote(1)))
	got := map[string]bool{}
	for _, a := range r.addrs {
		got[a.Addr().String()] = true
	}
	if !got["10.0.0.2"] || !got["10.0.0.3"] || got["10.0.0.4"] {
		t.Errorf("a1's answer: %v", got)
	}
	// Fakes of site b (odd i: addresses 10.66.<odd>.1) are not gateways.
	for a := range got {
		var x, y int
		if _, err := fmt.Sscanf(a, "10.66.%d.%d", &x, &y); err == nil && x%2 == 1 {
			t.Errorf("a1's answer holds fake %s of site b", a)
		}
	}
}

// TestMemoryPerPeer measures the heap a stored peer costs at worst (an
// agent with a full report, each peer from its own address) and checks it
// against the bound stated in limits.go (about 1.5 KiB).
func TestMemoryPerPeer(t *testing.T) {
	tr, _ := newTest(Config{MaxPeersPerAddress: -1, MaxSwarmsPerAddress: -1})
	id := Identity{Tenant: "t", Site: "s", Region: "eu", Role: RoleAgent}
	const n = 20000
	report := make([][20]byte, maxReport)
	for i := range report {
		report[i] = pid(900000 + i)
	}
	before := heapInUse()
	for i := range n {
		ih := hash(fmt.Sprint(i % 100))
		remote := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		mustOK(t, ann{ih: ih, id: pid(i), remote: remote + ":1", left: 1, ident: id}.do(t, tr))
		e := entry{id: pid(i), addr: netip.MustParseAddrPort(remote + ":0"), tok: noToken, site: unique.Make("s"), region: unique.Make("eu"), role: roleAgent}
		if ok, err := tr.storeReport(tr.shard(ih), ih, "t", &e, report, 0); !ok || err != nil {
			t.Fatalf("report %d: %v %v", i, ok, err)
		}
	}
	per := (int64(heapInUse()) - int64(before)) / n
	runtime.KeepAlive(tr)
	t.Logf("heap per stored peer with a full report: %d bytes (%d peers)", per, tr.Stored())
	if per > 2048 {
		t.Errorf("a peer costs %d bytes, over the stated bound of about 1.5 KiB", per)
	}
}

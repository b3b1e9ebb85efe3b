package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// Environment of the processes TestNATHolePunch starts in its namespaces.
const (
	natRoleEnv = "SWARMSHIP_NAT_ROLE"
	natDirEnv  = "SWARMSHIP_NAT_DIR"
	natHostEnv = "SWARMSHIP_NAT_HOST"
	natTLSEnv  = "SWARMSHIP_NAT_TLS" // "1": peer TLS
)

// natPeers is what the test tells a role to dial: First, then, once
// connected to all of First, Then.
type natPeers struct {
	First, Then []string
}

// natResult is what a downloading role reports when complete.
type natResult struct {
	Size int64
	// BySource is payload bytes received per peer address ("addr/network").
	BySource map[string]int64
	// HolepunchConns counts peers this client connected to only after a
	// holepunch connect message (library stats).
	DialableOnlyAfterHolepunch, DialedAfterHolepunchConnect int
	// Undialable counts peer addresses whose direct dial failed.
	Undialable int
	Seconds    float64
	// Total and Useful are the torrent's payload bytes read (library stats).
	Total, Useful int64
}

// Two sites, each behind its own masquerading router that lets nothing in
// unasked; the origin is public and runs its rendezvous peer
// (origin.yaml rendezvous.listen), the data-less client its tracker
// hands to site gateways. uTP is on, PEX off (as
// for locality-restricted agents). Site 1 holds the release; site 2's
// gateway gets it from site 1 through a hole punched by the rendezvous
// (BEP 55 over uTP): the two sites cannot dial each other otherwise. Site
// 2's second agent knows only its gateway (the tracker's gateway mode), so
// site 2's WAN ingress stays near one copy; with peer TLS (subtest tls) and
// without (plain). Bytes are counted per source;
// nothing is relayed (the rendezvous has no data and never gets any).
// The origin publishes the release from a directory catalog; site 1's
// seed serves it from the catalog's data directory.
func TestNATHolePunch(t *testing.T) {
	if role := os.Getenv(natRoleEnv); role != "" {
		runNATRole(t, role)
		return
	}
	if testing.Short() {
		t.Skip("NAT namespaces: not in -short")
	}
	t.Run("tls", func(t *testing.T) { testNATHolePunch(t, true) })
	t.Run("plain", func(t *testing.T) { testNATHolePunch(t, false) })
}

func testNATHolePunch(t *testing.T, withTLS bool) {
	nn := testenv.NewNATNet(t, 2)
	dir := t.TempDir()
	const size = 4 << 20
	if err := peertlstest.GeneratePKI(filepath.Join(dir, "pki"),
		peertlstest.CertSpec{Name: "rendezvous", Identity: peertls.Identity{Tenant: "acme", Site: "origin"}},
		peertlstest.CertSpec{Name: "seed", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}},
		peertlstest.CertSpec{Name: "gw", Identity: peertls.Identity{Tenant: "acme", Site: "s2"}},
		peertlstest.CertSpec{Name: "lan", Identity: peertls.Identity{Tenant: "acme", Site: "s2"}},
	); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, size)
	rand.Read(payload)
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seedDir, "payload"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	const deadline = 240 * time.Second // bounds a hang only: 4 race-built processes share CI's 2 cores
	ctx, cancel := context.WithTimeout(context.Background(), deadline+30*time.Second)
	t.Cleanup(cancel)
	site1, site2 := nn.Sites[0], nn.Sites[1]
	start := func(role, ns, host string) {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0],
			"-test.run=^TestNATHolePunch$", "-test.count=1", "-test.v", "-test.timeout="+(deadline+20*time.Second).String())
		tlsOn := "0"
		if withTLS {
			tlsOn = "1"
		}
		cmd.Env = append(os.Environ(), natRoleEnv+"="+role, natDirEnv+"="+dir, natHostEnv+"="+host, natTLSEnv+"="+tlsOn)
		out := &testenv.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		testenv.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			// Stop file first; kill what has not left a few seconds later.
			os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("%s (%s):\n%s", role, ns, out.String())
			}
		})
	}
	end := time.Now().Add(deadline)
	// The origin publishes the release (release.torrent) before it
	// writes its rendezvous port; the others load that torrent.
	start("rendezvous", nn.WAN, testenv.WANAddr)
	testenv.Eventually(t, time.Until(end), 100*time.Millisecond, func() error {
		_, err := os.Stat(filepath.Join(dir, "rendezvous.port"))
		return err
	})
	start("seed", site1.NS, "")
	start("gw", site2.NS, "")
	start("lan", site2.NS, "")
	port := func(role string) int {
		var p int
		testenv.Eventually(t, time.Until(end), 100*time.Millisecond, func() error {
			b, err := os.ReadFile(filepath.Join(dir, role+".port"))
			if err == nil {
				p, err = strconv.Atoi(string(b))
			}
			return err
		})
		return p
	}
	rzPort, seedPort, gwPort := port("rendezvous"), port("seed"), port("gw")
	port("lan")
	ingress0, err := site2.WANIngress()
	if err != nil {
		t.Fatal(err)
	}
	rz := net.JoinHostPort(testenv.WANAddr, strconv.Itoa(rzPort))
	// What a tracker answers: the address it saw (the router's) and the
	// announced port, which masquerade keeps for the peer's own packets.
	seedPublic := net.JoinHostPort(site1.PublicAddr, strconv.Itoa(seedPort))
	gwLAN := net.JoinHostPort(site2.LANAddr, strconv.Itoa(gwPort))
	writePeers := func(role string, p natPeers) {
		b, _ := json.Marshal(p)
		if err := os.WriteFile(filepath.Join(dir, role+".peers.tmp"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, role+".peers.tmp"), filepath.Join(dir, role+".peers")); err != nil {
			t.Fatal(err)
		}
	}
	writePeers("rendezvous", natPeers{})
	writePeers("seed", natPeers{First: []string{rz}})
	writePeers("gw", natPeers{First: []string{rz}, Then: []string{seedPublic}})
	writePeers("lan", natPeers{First: []string{gwLAN}})

	result := func(role string) natResult {
		var r natResult
		testenv.Eventually(t, time.Until(end), 200*time.Millisecond, func() error {
			b, err := os.ReadFile(filepath.Join(dir, role+".json"))
			if err != nil {
				return fmt.Errorf("%s not complete: %w", role, err)
			}
			return json.Unmarshal(b, &r)
		})
		return r
	}
	gw, lan := result("gw"), result("lan")
	var rzStats seeder.RendezvousStats
	testenv.Eventually(t, time.Until(end), 200*time.Millisecond, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "rendezvous.json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rzStats)
	})
	ingress1, err := site2.WANIngress()
	if err != nil {
		t.Fatal(err)
	}
	copies := float64(ingress1-ingress0) / size
	t.Logf("gateway of site 2: %+v", gw)
	t.Logf("second agent of site 2: %+v", lan)
	t.Logf("origin's rendezvous peer: %+v", rzStats)
	t.Logf("site 2 WAN ingress: %d bytes = %.3f copies of %d; bytes through a relay: 0 (none exists; the rendezvous served %d)",
		ingress1-ingress0, copies, size, gw.BySource[rz+"/udp"]+gw.BySource[rz+"/tcp"])

	// The gateway's payload came from site 1, across both NATs, and the
	// second agent's from the gateway. Connections are sampled, and a
	// connection closed at completion (both ends complete) loses its last
	// samples, so what no source accounts for is checked apart: nobody but
	// the expected peer sent a byte, and the payload arrived.
	checkSources := func(who string, r natResult, want string) {
		t.Helper()
		var from, other int64
		for src, n := range r.BySource {
			if h, _, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimSuffix(src, "/udp"), "/tcp")); h == want {
				from += n
			} else {
				other += n
			}
		}
		if from == 0 || other != 0 || r.Useful < size {
			t.Errorf("%s: %d bytes sampled from %s and %d from others (%v), %d useful of %d", who, from, want, other, r.BySource, r.Useful, size)
		}
	}
	checkSources("site 2's gateway", gw, site1.PublicAddr)
	checkSources("site 2's second agent", lan, site2.LANAddr)
	// Site 1 was not dialable from outside: the gateway's own dial failed,
	// and the connection came through the rendezvous.
	if gw.Undialable < 1 {
		t.Errorf("site 2's gateway reached site 1 with its first dial; the NAT should have stopped it")
	}
	if gw.DialableOnlyAfterHolepunch+gw.DialedAfterHolepunchConnect == 0 {
		t.Logf("the gateway reports no connect after a holepunch message (site 1's dial won)")
	}
	// The origin's rendezvous peer introduced the sites and moved no
	// payload either way.
	if rzStats.PayloadRead != 0 || rzStats.PayloadWritten != 0 || rzStats.Releases != 1 {
		t.Errorf("origin's rendezvous peer: %+v, want 1 release and no payload", rzStats)
	}
	// Target 1.15 copies; generous here (headers, retransmits on a loaded
	// machine); the figure is logged above.
	if copies > 1.5 {
		t.Errorf("site 2 WAN ingress %.3f copies, want about one", copies)
	}
}

// runNATRole is one peer of TestNATHolePunch, inside its namespace. It
// writes its port to <role>.port, dials what <role>.peers says, and when
// it downloads, reports <role>.json once complete; it runs until the stop
// file appears.
func runNATRole(t *testing.T, role string) {
	dir := os.Getenv(natDirEnv)
	deadline := time.Now().Add(250 * time.Second) // past the parent's deadline, inside -test.timeout
	if role == "rendezvous" {
		runNATOrigin(t, dir, deadline)
		return
	}
	var tc *tls.Config
	if os.Getenv(natTLSEnv) == "1" {
		var err error
		if tc, _, err = peertls.Load(peertlstest.Config(filepath.Join(dir, "pki"), role)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := btclient.New(btclient.Config{
		PeerIDPrefix: btclient.AgentPeerIDPrefix,
		ListenHost:   os.Getenv(natHostEnv),
		DataDir:      filepath.Join(dir, role),
		TLS:          tc,
		UTP:          true,
		NoPEX:        true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mi, err := metainfo.LoadFromFile(filepath.Join(dir, "release.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	var stor storage.ClientImpl = btclient.NewFileStorage(filepath.Join(dir, role), storage.NewMapPieceCompletion())
	if role == "seed" {
		// The release as the origin's directory catalog holds it.
		stor = btclient.NewFileStorage(filepath.Join(dir, "origin", "catalog", "data", natRelease), btclient.TrustedCompletion{})
	}
	tor, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  mi.HashInfoBytes(),
		InfoBytes: mi.InfoBytes,
		Storage:   stor,
	})
	<-tor.GotInfo()
	leecher := role == "gw" || role == "lan"
	if leecher {
		tor.DownloadAll()
	}
	if err := os.WriteFile(filepath.Join(dir, role+".port"), []byte(strconv.Itoa(cl.LocalPort())), 0o644); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ok func() bool) {
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: gave up waiting for %s", role, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopped := func() bool {
		_, err := os.Stat(filepath.Join(dir, "stop"))
		return err == nil
	}
	var peers natPeers
	wait("peers", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, role+".peers"))
		return err == nil && json.Unmarshal(b, &peers) == nil
	})
	add := func(addrs []string) {
		for _, a := range addrs {
			ap, err := net.ResolveTCPAddr("tcp4", a)
			if err != nil {
				t.Fatal(err)
			}
			// 4-byte form, as trackers' compact answers give it: the library
			// takes a 16-byte one for IPv6 in hole-punch messages, and the
			// rendezvous then finds no such peer.
			ap.IP = ap.IP.To4()
			tor.AddPeers([]torrent.PeerInfo{{Addr: ap, Trusted: true}})
		}
	}
	// What the peer sees, every few seconds (shown when the test fails).
	diag := make(chan struct{})
	defer close(diag)
	go func() {
		for {
			select {
			case <-diag:
				return
			case <-time.After(3 * time.Second):
			}
			var conns []string
			for _, c := range tor.PeerConns() {
				s := c.Stats()
				conns = append(conns, fmt.Sprintf("%s/%s src=%s in=%d", c.RemoteAddr, c.Network, c.Discovery, s.BytesReadUsefulData.Int64()))
			}
			st := cl.Stats()
			var hp []string
			if m, ok := expvar.Get("torrent").(*expvar.Map); ok {
				m.Do(func(kv expvar.KeyValue) {
					if strings.Contains(kv.Key, "holepunch") || strings.Contains(kv.Key, "dial") {
						hp = append(hp, kv.Key+"="+kv.Value.String())
					}
				})
			}
			fmt.Fprintf(os.Stderr, "%s: library counters %v\n", role, hp)
			fmt.Fprintf(os.Stderr, "%s: %d conns %v; missing %d; half-open %d, holepunch: undialable %d, dialed after connect %d, dialable only after %d, ok after connect %d\n",
				role, len(conns), conns, tor.BytesMissing(), st.ActiveHalfOpenAttempts, st.NumPeersUndialableWithoutHolepunch,
				st.NumPeersUndialableWithoutHolepunchDialedAfterHolepunchConnect, st.NumPeersDialableOnlyAfterHolepunch, st.NumPeersDialedSuccessfullyAfterHolepunchConnect)
		}
	}()
	add(peers.First)
	wait("first peers", func() bool {
		n := 0
		for _, c := range tor.PeerConns() {
			for _, a := range peers.First {
				if c.RemoteAddr.String() == a {
					n++
				}
			}
		}
		return n >= len(peers.First) || stopped()
	})
	t.Logf("%s: connected to %v", role, peers.First)
	add(peers.Then)
	start := time.Now()
	if leecher {
		// Received payload per connection, sampled until complete (a closed
		// connection's last bytes may be missed; the test allows for it).
		got := map[*torrent.PeerConn]int64{}
		src := map[*torrent.PeerConn]string{}
		sample := func() {
			for _, c := range tor.PeerConns() {
				s := c.Stats()
				got[c] = s.BytesReadData.Int64()
				src[c] = c.RemoteAddr.String() + "/" + c.Network
			}
		}
		wait("completion", func() bool {
			sample()
			return tor.Complete().Bool()
		})
		sample()
		ts := tor.Stats()
		r := natResult{Size: tor.Length(), BySource: map[string]int64{}, Seconds: time.Since(start).Seconds(),
			Total: ts.BytesReadData.Int64(), Useful: ts.BytesReadUsefulData.Int64()}
		for c, n := range got {
			r.BySource[src[c]] += n
		}
		st := cl.Stats()
		r.Undialable = st.NumPeersUndialableWithoutHolepunch
		r.DialableOnlyAfterHolepunch = st.NumPeersDialableOnlyAfterHolepunch
		r.DialedAfterHolepunchConnect = st.NumPeersDialedSuccessfullyAfterHolepunchConnect
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, role+".json.tmp"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, role+".json.tmp"), filepath.Join(dir, role+".json")); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: complete: %s", role, b)
	}
	wait("stop", stopped)
	fmt.Fprintln(os.Stderr, role, "stopping")
}

const natRelease = "app"

// runNATOrigin is the origin of TestNATHolePunch: a directory catalog in
// which it publishes the payload (release.torrent for the others), no
// seeding client, and its rendezvous peer on the public address. It
// writes rendezvous.port once the rendezvous peer has joined the release
// and its tracker hands it to a site's gateway,
// then rendezvous.json (its figures) every second until the stop file.
func runNATOrigin(t *testing.T, dir string, deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	const rzPort = 6890 // the namespace is the test's own: no other listener
	sw, err := localswarm.New(ctx, filepath.Join(dir, "origin"), localswarm.OriginOptions{
		Configure: func(c *seeder.Config) {
			c.Rendezvous.Listen = net.JoinHostPort(os.Getenv(natHostEnv), strconv.Itoa(rzPort))
			if os.Getenv(natTLSEnv) == "1" {
				c.PeerTLS = peertlstest.Config(filepath.Join(dir, "pki"), "rendezvous")
			}
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if _, err := sw.Publish(ctx, natRelease, "1.0", []string{filepath.Join(dir, "seed", "payload")}, "stable"); err != nil {
		t.Fatal(err)
	}
	tb, err := catalog.ReadAll(ctx, sw.Store, catalog.TorrentKey(natRelease, "1.0"), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release.torrent"), tb, 0o644); err != nil {
		t.Fatal(err)
	}
	stopped := func() bool {
		_, err := os.Stat(filepath.Join(dir, "stop"))
		return err == nil
	}
	for {
		st, ok := sw.Origin.Rendezvous()
		if !ok {
			t.Fatal("rendezvous off")
		}
		if st.Releases == 1 {
			break
		}
		if time.Now().After(deadline) || stopped() {
			t.Fatalf("the rendezvous peer never joined the release: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The address the others dial is the one the origin's tracker gives a
	// site's gateway, first in its answer.
	mi, err := metainfo.Load(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes()
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {btclient.AgentPeerIDPrefix + "gateway00001"},
		"port": {"7000"}, "left": {"1"}, "compact": {"1"}, "role": {"agent"}, "site": {"s2"}, "region": {"eu"}, "locality": {"gateway"}}
	resp, err := http.Get(sw.OriginURL + "/announce?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Failure string `bencode:"failure reason"`
		Peers   []byte `bencode:"peers"`
	}
	err = bencode.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if err != nil || len(ans.Peers) < 6 {
		t.Fatalf("gateway's announce: %v, %+v", err, ans)
	}
	rz := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ans.Peers[:4])), uint16(ans.Peers[4])<<8|uint16(ans.Peers[5]))
	if want := net.JoinHostPort(os.Getenv(natHostEnv), strconv.Itoa(sw.Origin.RendezvousPort())); rz.String() != want {
		t.Fatalf("the tracker handed the gateway %v first, want the rendezvous peer %s", rz, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "rendezvous.port"), []byte(strconv.Itoa(int(rz.Port()))), 0o644); err != nil {
		t.Fatal(err)
	}
	for !stopped() && time.Now().Before(deadline) {
		st, _ := sw.Origin.Rendezvous()
		b, _ := json.Marshal(st)
		os.WriteFile(filepath.Join(dir, "rendezvous.json.tmp"), b, 0o644)
		os.Rename(filepath.Join(dir, "rendezvous.json.tmp"), filepath.Join(dir, "rendezvous.json"))
		fmt.Fprintf(os.Stderr, "origin rendezvous: %s\n", b)
		time.Sleep(time.Second)
	}
}

// Agents with swarm.utp on and peer TLS share a release, and answer TLS
// over uTP on their peer port's number.
func TestAgentUTPWithPeerTLS(t *testing.T) {
	pkiDir := t.TempDir()
	if err := peertlstest.GeneratePKI(pkiDir,
		peertlstest.CertSpec{Name: "agent-1", Identity: peertls.Identity{Tenant: "acme", Site: "site-0", Region: "eu"}},
		peertlstest.CertSpec{Name: "agent-2", Identity: peertls.Identity{Tenant: "acme", Site: "site-1", Region: "eu"}},
		peertlstest.CertSpec{Name: "friend", Identity: peertls.Identity{Tenant: "acme", Site: "site-9"}},
	); err != nil {
		t.Fatal(err)
	}
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "app", "1.0", 41, map[string]int64{"bin/app": 2 << 20, "README": 1 << 10}, "stable")
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Tenant = "acme"
		c.PeerTLS = peertlstest.Config(pkiDir, filepath.Base(c.CacheDir))
		c.Swarm.UTP = "on"
	})
	waitActive(t, "app", "1.0", 60*time.Second, agents...)
	friendTLS, _, err := peertls.Load(peertlstest.Config(pkiDir, "friend"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := utp.NewSocket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := peertls.Dialer{TLS: friendTLS, Net: s, Network: "udp4", Timeout: 30 * time.Second}.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(ra.Agent.PeerPort())))
		cancel()
		if err != nil {
			t.Fatalf("%s: TLS over uTP on its peer port: %v", ra.Name, err)
		}
		c.Close()
	}
}

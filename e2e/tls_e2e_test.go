package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/localswarm"
)

// outsider is a BitTorrent client that is not an agent, pointed straight
// at the agents' peer ports.
type outsider struct {
	name      string
	cl        *torrent.Client
	t         *torrent.Torrent
	handshook atomic.Int64 // TLS handshakes that reached our certificate check
	dials     atomic.Int64 // plain dials
}

// newOutsider starts a client with tc (nil: plain TCP) that wants the
// release described by mi.
func newOutsider(t *testing.T, name string, tc *tls.Config, mi *metainfo.MetaInfo) *outsider {
	t.Helper()
	o := &outsider{name: name}
	if tc != nil {
		tc = tc.Clone()
		next := tc.VerifyConnection
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			o.handshook.Add(1)
			if next != nil {
				return next(cs)
			}
			return nil
		}
	}
	dir := t.TempDir()
	cl, err := btclient.New(btclient.Config{PeerIDPrefix: "-XX0001-", ListenHost: "127.0.0.1", DataDir: dir, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if tc == nil {
		cl.AddDialer(countingDialer{&o.dials})
	}
	o.cl = cl
	o.t, _ = cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash: mi.HashInfoBytes(), InfoBytes: mi.InfoBytes,
		Storage: storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: dir, PieceCompletion: storage.NewMapPieceCompletion()}),
	})
	<-o.t.GotInfo()
	o.t.DownloadAll()
	return o
}

// knock (re-)adds the agents' peer addresses.
func (o *outsider) knock(ports []int) {
	var pi []torrent.PeerInfo
	for _, p := range ports {
		pi = append(pi, torrent.PeerInfo{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}})
	}
	o.t.AddPeers(pi)
}

type countingDialer struct{ n *atomic.Int64 }

func (d countingDialer) DialerNetwork() string { return "tcp" }

func (d countingDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

// presenting makes a hostile TLS client: it trusts any server and presents
// the certificate in dir/name whatever CAs the server asks for.
func presenting(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil },
	}
}

// Agents with peer_tls: required share a release among themselves; a
// plain client, one with a certificate from another CA and one of another
// tenant, dialling the agents' ports directly, complete no handshake and
// get no byte, and a plain BitTorrent handshake gets no answer. A client
// certified like the agents, knocking the same way, does get data (so the
// knocking works).
func TestTLSPeersOnlyCertifiedPeersShare(t *testing.T) {
	const n = 3
	pkiDir, strangerCA := t.TempDir(), t.TempDir()
	var specs []peertlstest.CertSpec
	for i := range n {
		specs = append(specs, peertlstest.CertSpec{Name: fmt.Sprintf("agent-%d", i+1), Identity: peertls.Identity{Tenant: "acme", Site: fmt.Sprintf("site-%d", i%2), Region: "eu"}})
	}
	specs = append(specs,
		peertlstest.CertSpec{Name: "friend", Identity: peertls.Identity{Tenant: "acme", Site: "site-9"}},
		peertlstest.CertSpec{Name: "other-tenant", Identity: peertls.Identity{Tenant: "globex", Site: "site-0"}},
	)
	if err := peertlstest.GeneratePKI(pkiDir, specs...); err != nil {
		t.Fatal(err)
	}
	if err := peertlstest.GeneratePKI(strangerCA, peertlstest.CertSpec{Name: "stranger", Identity: peertls.Identity{Tenant: "acme", Site: "site-0"}}); err != nil {
		t.Fatal(err)
	}

	// Slow origin: the agents need each other to finish early.
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(30 * time.Millisecond)})
	m := publish(t, sw, "app", "1.0", 40, release24MiB, "stable")
	agents := startAgents(t, sw, n, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Tenant = "acme"
		c.PeerTLS = peertlstest.Config(pkiDir, filepath.Base(c.CacheDir))
	})
	var ports []int
	for _, ra := range agents {
		p := ra.Agent.PeerPort()
		if p == 0 {
			t.Fatalf("%s reports no peer port", ra.Name)
		}
		ports = append(ports, p)
	}

	tb, err := catalog.ReadAll(context.Background(), sw.Store, catalog.TorrentKey("app", "1.0"), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	friendTLS, _, err := peertls.Load(peertlstest.Config(pkiDir, "friend"))
	if err != nil {
		t.Fatal(err)
	}
	rogues := []*outsider{
		newOutsider(t, "plain", nil, mi),
		newOutsider(t, "another CA", presenting(t, strangerCA, "stranger"), mi),
		newOutsider(t, "another tenant", presenting(t, pkiDir, "other-tenant"), mi),
	}
	friend := newOutsider(t, "certified", friendTLS, mi)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, o := range append(rogues, friend) {
				o.knock(ports)
			}
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()

	waitActive(t, "app", "1.0", 120*time.Second, agents...)
	time.Sleep(time.Second) // the rogues keep knocking at seeding agents
	close(stop)
	<-done
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	var fromPeers, uploaded int64
	for _, ra := range agents {
		rs := releaseStatus(ra, "app", "1.0")
		fromPeers += rs.Downloaded.Peer
		uploaded += rs.Uploaded
		t.Logf("%s: %d bytes from peers, %d from the origin, %d uploaded", ra.Name, rs.Downloaded.Peer, rs.Downloaded.Origin, rs.Uploaded)
	}
	if fromPeers == 0 {
		t.Fatal("no bytes came from peers over TLS")
	}
	for _, o := range rogues {
		st := o.t.Stats()
		t.Logf("%s: %d plain dials, %d TLS handshakes reached its check, %d bytes read", o.name, o.dials.Load(), o.handshook.Load(), st.BytesRead.Int64())
		if o.dials.Load()+o.handshook.Load() == 0 {
			t.Errorf("%s never reached an agent", o.name)
		}
		if st.BytesRead.Int64() != 0 || st.BytesReadData.Int64() != 0 || o.t.BytesCompleted() != 0 || len(o.t.PeerConns()) != 0 {
			t.Errorf("%s peer got through: read %d bytes (%d data), completed %d, %d conns",
				o.name, st.BytesRead.Int64(), st.BytesReadData.Int64(), o.t.BytesCompleted(), len(o.t.PeerConns()))
		}
	}
	// What the agents uploaded went to agents and to the certified client
	// only: the rogues read nothing.
	fst := friend.t.Stats()
	t.Logf("certified outsider read %d data bytes; agents uploaded %d in all", fst.BytesReadData.Int64(), uploaded)
	if fst.BytesReadData.Int64() == 0 {
		t.Error("a certified client knocking like the rogues got no data: the test proves nothing")
	}

	// A plain BitTorrent handshake for this very torrent gets no answer.
	ih := mi.HashInfoBytes()
	for i, p := range ports {
		got, err := plainHandshake(fmt.Sprintf("127.0.0.1:%d", p), ih)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got, []byte("BitTorrent protocol")) {
			t.Errorf("%s answered a plain BitTorrent handshake: %q", agents[i].Name, got)
		}
	}
}

// plainHandshake sends a BitTorrent handshake for ih over plain TCP and
// returns what comes back before the connection ends.
func plainHandshake(addr string, ih metainfo.Hash) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	hs := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
	hs = append(hs, ih[:]...)
	hs = append(hs, "-XX0000-012345678901"...)
	if _, err := c.Write(hs); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !strings.Contains(err.Error(), "reset") {
		return got, err
	}
	return got, nil
}

func TestTLSConfigValidation(t *testing.T) {
	base := `catalog:
  url: http://origin:7070/
  root: /etc/swarmship/root.json
cache_dir: /var/lib/swarmship
subscriptions:
  - name: app
`
	for _, tc := range []struct {
		yaml string
		want string // "" = valid
	}{
		{"", ""},
		{"peer_tls:\n  mode: off\n", ""},
		{"peer_tls:\n  mode: required\n  ca: ca.pem\n  cert: a.pem\n  key: a.key\n", ""},
		{"peer_tls:\n  mode: maybe\n", `agent.yaml:8: peer_tls.mode: mode "maybe"`},
		{"peer_tls:\n  mode: required\n  ca: ca.pem\n  key: a.key\n", "cert is required"},
		{"peer_tls:\n  ca: ca.pem\n  cert: a.pem\n  key: a.key\n", "set mode: required"},
		{"peer_tls:\n  mode: required\n  ca: ca.pem\n  cert: a.pem\n  key: a.key\n  tenant: x\n", "field tenant not found"},
	} {
		_, err := agent.ParseConfig("agent.yaml", []byte(base+tc.yaml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// An agent refuses to start with a world-readable key or a certificate of
// another tenant than its own.
func TestTLSAgentRefusesBadKeyOrTenant(t *testing.T) {
	dir := t.TempDir()
	if err := peertlstest.GeneratePKI(dir, peertlstest.CertSpec{Name: "a", Identity: peertls.Identity{Tenant: "acme", Site: "site-1"}}); err != nil {
		t.Fatal(err)
	}
	sw := newSwarm(t, localswarm.OriginOptions{})
	cfg := sw.AgentConfig("a", "site-1", "eu", agent.Subscription{Name: "app"})
	cfg.PeerTLS = peertlstest.Config(dir, "a")
	cfg.Tenant = "globex"
	if _, err := sw.StartAgent(context.Background(), "a", cfg); err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("agent of tenant globex with an acme certificate: %v", err)
	}
	cfg.Tenant = "acme"
	if err := os.Chmod(cfg.PeerTLS.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.StartAgent(context.Background(), "a", cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("agent with a 0644 key: %v", err)
	}
}

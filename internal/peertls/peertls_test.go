package peertls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

func TestPeertlsIdentitySAN(t *testing.T) {
	for _, want := range []peertls.Identity{
		{Tenant: "acme", Site: "berlin-01"},
		{Tenant: "acme", Site: "store_7", Region: "eu"},
		{Tenant: "a.b+c", Site: "x"},
	} {
		u := want.URI()
		if !strings.HasPrefix(u.String(), "swarmship://tenant/"+want.Tenant+"/site/"+want.Site) {
			t.Errorf("URI %s does not follow the convention", u)
		}
		got, err := peertls.IdentityFromCert(&x509.Certificate{URIs: []*url.URL{mustURL(t, u.String())}})
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", u, got, err, want)
		}
	}
	other := mustURL(t, "spiffe://acme/workload") // other schemes are ignored
	got, err := peertls.IdentityFromCert(&x509.Certificate{URIs: []*url.URL{other, mustURL(t, "swarmship://tenant/acme/site/s1/region/eu")}})
	if err != nil || got != (peertls.Identity{Tenant: "acme", Site: "s1", Region: "eu"}) {
		t.Errorf("with a foreign SAN: %+v, %v", got, err)
	}
	for _, bad := range [][]string{
		{},
		{"spiffe://acme/workload"},
		{"swarmship://tenant/acme"},
		{"swarmship://tenant/acme/site"},
		{"swarmship://site/s1/tenant/acme"},
		{"swarmship://tenant/acme/site/s1/colour/red"},
		{"swarmship://tenant/acme/site/s1/site/s2"},
		{"swarmship://tenant/acme/site/..x"},
		{"swarmship://tenant/ac%20me/site/s1"},
		{"swarmship://tenant:1/acme/site/s1"},
		{"swarmship://tenant/acme/site/s1?x=1"},
		{"swarmship://tenant/acme/site/s1", "swarmship://tenant/evil/site/s1"},
	} {
		c := &x509.Certificate{}
		for _, s := range bad {
			c.URIs = append(c.URIs, mustURL(t, s))
		}
		if got, err := peertls.IdentityFromCert(c); err == nil {
			t.Errorf("%v accepted as %+v", bad, got)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPeertlsConfigValidate(t *testing.T) {
	ok := []peertls.Config{
		{},
		{Mode: "off"},
		{Mode: "off", CA: "ca.pem", Cert: "a.pem", Key: "a.key"},
		{Mode: "required", CA: "ca.pem", Cert: "a.pem", Key: "a.key"},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]peertls.Config{
		"mode":               {Mode: "optional", CA: "ca.pem", Cert: "a.pem", Key: "a.key"},
		"ca is":              {Mode: "required", Cert: "a.pem", Key: "a.key"},
		"cert":               {Mode: "required", CA: "ca.pem", Key: "a.key"},
		"key is":             {Mode: "required", CA: "ca.pem", Cert: "a.pem"},
		"set mode: required": {CA: "ca.pem", Cert: "a.pem", Key: "a.key"},
	}
	for want, c := range bad {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c, err, want)
		}
	}
	if tc, id, err := peertls.Load(peertls.Config{}); tc != nil || id != (peertls.Identity{}) || err != nil {
		t.Errorf("Load of mode off: %v %+v %v", tc, id, err)
	}
}

func TestPeertlsLoad(t *testing.T) {
	dir := pki(t,
		peertlstest.CertSpec{Name: "good", Identity: peertls.Identity{Tenant: "acme", Site: "s1", Region: "eu"}},
		peertlstest.CertSpec{Name: "nosan"},
		peertlstest.CertSpec{Name: "expired", Identity: id("acme", "s1"), NotAfter: time.Now().Add(-time.Minute)},
	)
	other := pki(t, peertlstest.CertSpec{Name: "good", Identity: id("acme", "s1")})

	tc, got, err := peertls.Load(peertlstest.Config(dir, "good"))
	if err != nil {
		t.Fatal(err)
	}
	if got != (peertls.Identity{Tenant: "acme", Site: "s1", Region: "eu"}) {
		t.Fatalf("identity %+v", got)
	}
	if tc.MinVersion != tls.VersionTLS13 || tc.MaxVersion != tls.VersionTLS13 || tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.ClientCAs == nil || tc.RootCAs == nil || tc.VerifyConnection == nil {
		t.Fatalf("TLS config is not TLS 1.3 mutual auth: %+v", tc)
	}

	// A world-readable key is refused with the fix in the message.
	c := peertlstest.Config(dir, "good")
	if err := os.Chmod(c.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := peertls.Load(c); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key: %v, want a chmod 600 error", err)
	}
	os.Chmod(c.Key, 0o640)
	if _, _, err := peertls.Load(c); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0640 key: %v, want a chmod 600 error", err)
	}
	os.Chmod(c.Key, 0o600)

	for name, c := range map[string]peertls.Config{
		"another CA":  {Mode: "required", CA: filepath.Join(other, "ca.pem"), Cert: c.Cert, Key: c.Key},
		"no SAN":      peertlstest.Config(dir, "nosan"),
		"expired":     peertlstest.Config(dir, "expired"),
		"missing key": {Mode: "required", CA: c.CA, Cert: c.Cert, Key: filepath.Join(dir, "nope.key")},
		"cert as CA":  {Mode: "required", CA: c.Key, Cert: c.Cert, Key: c.Key},
		"wrong key":   {Mode: "required", CA: c.CA, Cert: c.Cert, Key: filepath.Join(other, "good.key")},
	} {
		if _, _, err := peertls.Load(c); err == nil {
			t.Errorf("%s: loaded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// handshake dials a Listener with a client config and reports the error
// of the handshake and of a first read (in TLS 1.3 a client learns that
// the server refused its certificate only when it reads).
func handshake(t *testing.T, ln *peertls.Listener, client *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{Config: client}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		if sc, err := ln.Accept(); err == nil {
			sc.Write([]byte("hello"))
			sc.Close()
		}
	}()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

func TestPeertlsHandshakeRefusals(t *testing.T) {
	ca := pki(t,
		peertlstest.CertSpec{Name: "a1", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "a2", Identity: id("acme", "s2")},
		peertlstest.CertSpec{Name: "evil", Identity: id("globex", "s1")},
		peertlstest.CertSpec{Name: "nosan"},
	)
	otherCA := pki(t, peertlstest.CertSpec{Name: "a3", Identity: id("acme", "s3")})
	server := load(t, ca, "a1")
	ln, err := peertls.Listen("127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// Same CA, same tenant, other site: accepted; both ends see each other.
	if err := handshake(t, ln, load(t, ca, "a2")); err != nil {
		t.Fatalf("certified peer refused: %v", err)
	}
	conn, err := peertls.Dialer{TLS: load(t, ca, "a2")}.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := peerIdentity(sc.(*tls.Conn)); err != nil || pid != id("acme", "s2") {
		t.Fatalf("server sees %+v, %v", pid, err)
	}
	if pid, err := peerIdentity(conn.(*tls.Conn)); err != nil || pid != id("acme", "s1") {
		t.Fatalf("client sees %+v, %v", pid, err)
	}
	conn.Close()
	sc.Close()
	accepted, refused := ln.Accepted(), ln.Refused()

	// Hostile clients skip their own checks; the server must refuse them.
	// (GetClientCertificate: crypto/tls would otherwise withhold a
	// certificate the server's CA list does not name.)
	send := func(c tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	hostile := map[string]*tls.Config{
		"no certificate":                {InsecureSkipVerify: true},
		"certificate of another CA":     {InsecureSkipVerify: true, GetClientCertificate: send(rawCert(t, otherCA, "a3"))},
		"certificate of another tenant": {InsecureSkipVerify: true, GetClientCertificate: send(rawCert(t, ca, "evil"))},
		"certificate without identity":  {InsecureSkipVerify: true, GetClientCertificate: send(rawCert(t, ca, "nosan"))},
		"TLS 1.2":                       {InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, GetClientCertificate: send(rawCert(t, ca, "a2"))},
	}
	for name, c := range hostile {
		err := handshake(t, ln, c)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	testenv.Poll(5*time.Second, 10*time.Millisecond, func() bool { return ln.Refused() >= refused+int64(len(hostile)) })
	if got := ln.Refused() - refused; got != int64(len(hostile)) {
		t.Errorf("listener refused %d handshakes, want %d", got, len(hostile))
	}
	if ln.Accepted() != accepted {
		t.Errorf("listener accepted %d hostile handshakes", ln.Accepted()-accepted)
	}

	// The client side refuses servers of another tenant or CA too.
	for name, srv := range map[string]*tls.Config{
		"another tenant": {Certificates: []tls.Certificate{rawCert(t, ca, "evil")}, ClientAuth: tls.RequireAnyClientCert},
		"another CA":     {Certificates: []tls.Certificate{rawCert(t, otherCA, "a3")}, ClientAuth: tls.RequireAnyClientCert},
		"no identity":    {Certificates: []tls.Certificate{rawCert(t, ca, "nosan")}, ClientAuth: tls.RequireAnyClientCert},
	} {
		l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := l.Accept(); err == nil {
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		_, err = peertls.Dialer{TLS: load(t, ca, "a2"), Timeout: 5 * time.Second}.Dial(context.Background(), l.Addr().String())
		l.Close()
		if err == nil {
			t.Errorf("dialer accepted a server with %s", name)
		} else if name == "another tenant" && !strings.Contains(err.Error(), `belongs to tenant "globex", not "acme"`) {
			t.Errorf("server with %s: %v, want the tenant named", name, err)
		} else {
			t.Logf("server with %s: %v", name, err)
		}
	}
}

// A plain BitTorrent handshake to a TLS port gets no BitTorrent answer.
func TestPeertlsPlainTCPGetsNoBitTorrentHandshake(t *testing.T) {
	ca := pki(t, peertlstest.CertSpec{Name: "a1", Identity: id("acme", "s1")})
	ln, err := peertls.Listen("127.0.0.1:0", load(t, ca, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := plainBitTorrentHandshake(t, ln.Addr().String())
	if bytes.Contains(got, []byte("BitTorrent protocol")) {
		t.Fatalf("plain peer got a BitTorrent handshake: %q", got)
	}
	t.Logf("plain peer got %d bytes back: %x", len(got), got)
	testenv.Poll(5*time.Second, 10*time.Millisecond, func() bool { return ln.Refused() != 0 })
	if ln.Refused() != 1 || ln.Accepted() != 0 {
		t.Fatalf("refused %d, accepted %d", ln.Refused(), ln.Accepted())
	}
}

// plainBitTorrentHandshake sends a BitTorrent handshake over plain TCP and
// returns whatever comes back before the connection ends.
func plainBitTorrentHandshake(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hs := append([]byte("\x13BitTorrent protocol"), make([]byte, 8+20)...)
	hs = append(hs, []byte("-XX0000-012345678901")...)
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Logf("connection left open until the read deadline")
	}
	return got
}

func TestPeertlsListenerClose(t *testing.T) {
	ca := pki(t, peertlstest.CertSpec{Name: "a1", Identity: id("acme", "s1")})
	ln, err := peertls.Listen("127.0.0.1:0", load(t, ca, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	// A pending (never completed) handshake must not hold Close up.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- ln.Close() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close waited for a pending handshake")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("port still open after Close")
	}
}

func TestPeertlsGenerateTestPKIModes(t *testing.T) {
	dir := pki(t, peertlstest.CertSpec{Name: "a1", Identity: id("acme", "s1")})
	for _, n := range []string{"ca.key", "a1.key"} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", n, fi.Mode().Perm())
		}
	}
	// A second call reuses the CA: certificates from both calls verify.
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err := peertlstest.GeneratePKI(dir, peertlstest.CertSpec{Name: "a2", Identity: id("acme", "s2")}); err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("CA replaced")
	}
	for _, n := range []string{"a1", "a2"} {
		if _, _, err := peertls.Load(peertlstest.Config(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "a1.pem"))
	blk, _ := pem.Decode(b)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "swarmship://tenant/acme/site/s1" {
		t.Fatalf("SANs %v", cert.URIs)
	}
}

// peerIdentity is the verified identity of the other end of a handshaken
// TLS connection.
func peerIdentity(c *tls.Conn) (peertls.Identity, error) {
	cs := c.ConnectionState()
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return peertls.Identity{}, errors.New("no verified peer certificate")
	}
	return peertls.IdentityFromCert(cs.PeerCertificates[0])
}

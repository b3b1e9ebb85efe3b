package peertls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

// sendCert makes a hostile client present c whatever CAs the server names.
func sendCert(c tls.Certificate) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil },
	}
}

// tlsListener finds the peer TLS listener btclient attached to cl.
func tlsListener(t *testing.T, cl *torrent.Client) *peertls.Listener {
	t.Helper()
	for _, l := range cl.Listeners() {
		if pl, ok := l.(*peertls.Listener); ok {
			return pl
		}
	}
	t.Fatal("client has no peer TLS listener")
	return nil
}

// A seeding anacrolix client with peer TLS serves a certified leecher and
// nobody else: a plain client, one with a certificate from another CA and
// one of another tenant get no handshake and no byte.
func TestPeertlsAnacrolixOnlyCertifiedPeersGetData(t *testing.T) {
	ca := pki(t,
		peertlstest.CertSpec{Name: "seeder", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "leecher", Identity: id("acme", "s2")},
		peertlstest.CertSpec{Name: "evil", Identity: id("globex", "s2")},
	)
	otherCA := pki(t, peertlstest.CertSpec{Name: "stranger", Identity: id("acme", "s2")})

	data := t.TempDir()
	mi := makeTorrent(t, data, 8<<20, 256<<10)
	seeder := newClient(t, t.TempDir(), load(t, ca, "seeder"))
	seed(t, seeder, data, mi)
	port := seeder.LocalPort()
	ln := tlsListener(t, seeder)
	if port == 0 || port != ln.Port() {
		t.Fatalf("LocalPort %d, TLS listener port %d", port, ln.Port())
	}

	type rogue struct {
		name string
		cl   *torrent.Client
		t    *torrent.Torrent
	}
	var rogues []rogue
	var plainDials atomic.Int64
	for _, r := range []struct {
		name string
		tc   *tls.Config
	}{
		{"plain", nil},
		{"another CA", sendCert(rawCert(t, otherCA, "stranger"))},
		{"another tenant", sendCert(rawCert(t, ca, "evil"))},
	} {
		cl := newClient(t, t.TempDir(), r.tc)
		if r.tc == nil {
			// Count the plain client's dials (it dials with every dialer).
			cl.AddDialer(countingDialer{&plainDials})
		}
		rogues = append(rogues, rogue{r.name, cl, leech(t, cl, t.TempDir(), mi)})
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // rogues keep knocking
		defer close(done)
		for {
			for _, r := range rogues {
				addPeer(r.t, port)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	good := newClient(t, t.TempDir(), load(t, ca, "leecher"))
	gt := leech(t, good, t.TempDir(), mi)
	waitComplete(t, gt, port, 60*time.Second)
	time.Sleep(time.Second) // let the rogues knock a while longer
	close(stop)
	<-done

	if st := gt.Stats(); st.BytesReadUsefulData.Int64() < 8<<20 {
		t.Fatalf("certified leecher read %d useful bytes", st.BytesReadUsefulData.Int64())
	}
	for _, r := range rogues {
		st := r.t.Stats()
		if n := st.BytesReadData.Int64(); n != 0 || r.t.BytesCompleted() != 0 || len(r.t.PeerConns()) != 0 {
			t.Errorf("%s peer: read %d data bytes, completed %d, %d conns", r.name, n, r.t.BytesCompleted(), len(r.t.PeerConns()))
		}
		if n := st.BytesRead.Int64(); n != 0 {
			t.Errorf("%s peer: read %d bytes of BitTorrent protocol", r.name, n)
		}
	}
	if plainDials.Load() == 0 {
		t.Error("the plain client never dialled the seeder")
	}
	if ln.Refused() < int64(len(rogues)) {
		t.Errorf("seeder refused %d handshakes, want at least %d", ln.Refused(), len(rogues))
	}
	t.Logf("seeder: %d TLS handshakes accepted, %d refused; plain client dialled %d times", ln.Accepted(), ln.Refused(), plainDials.Load())

	// The listener closes with the client.
	seeder.Close()
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("peer port still open after the client closed")
	})
}

type countingDialer struct{ n *atomic.Int64 }

func (d countingDialer) DialerNetwork() string { return "tcp" }

func (d countingDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

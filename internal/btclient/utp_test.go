package btclient_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
)

// With UTP the client answers uTP on its advertised (TCP) port, plain and
// under peer TLS; with TLS a uTP peer without a certificate is refused.
func TestUTPListensOnThePeerPort(t *testing.T) {
	dir := t.TempDir()
	if err := peertlstest.GeneratePKI(dir,
		peertlstest.CertSpec{Name: "a", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}},
		peertlstest.CertSpec{Name: "b", Identity: peertls.Identity{Tenant: "acme", Site: "s2"}}); err != nil {
		t.Fatal(err)
	}
	tlsFor := func(name string) *peertls.Config {
		c := peertlstest.Config(dir, name)
		return &c
	}
	for _, withTLS := range []bool{false, true} {
		t.Run("tls="+strconv.FormatBool(withTLS), func(t *testing.T) {
			cfg := btclient.Config{PeerIDPrefix: btclient.AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir(), UTP: true}
			if withTLS {
				tc, _, err := peertls.Load(*tlsFor("a"))
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLS = tc
			}
			cl, err := btclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			// A client with no torrent wants no peer: it closes what it
			// accepts, and under load that reset overtook the dial's
			// connect (UTP_ECONNRESET, 1 run in 30). With a torrent it
			// keeps the connection until the handshake times out.
			cl.AddTorrentInfoHash(metainfo.Hash{1})
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cl.LocalPort()))
			s, err := utp.NewSocket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if !withTLS {
				c, err := s.DialContext(ctx, "udp4", addr)
				if err != nil {
					t.Fatalf("uTP dial of the peer port: %v", err)
				}
				c.Close()
				return
			}
			tc, _, err := peertls.Load(*tlsFor("b"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := peertls.Dialer{TLS: tc, Net: s, Network: "udp4", Timeout: 30 * time.Second}.Dial(ctx, addr)
			if err != nil {
				t.Fatalf("TLS over uTP: %v", err)
			}
			c.Close()
			// No certificate: refused at the handshake (in TLS 1.3 the client
			// learns it at its first read).
			bare := tc.Clone()
			bare.Certificates = nil
			c, err = peertls.Dialer{TLS: bare, Net: s, Network: "udp4", Timeout: 30 * time.Second}.Dial(ctx, addr)
			if err == nil {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, err = c.Read(make([]byte, 1))
				var ne net.Error
				if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
					t.Fatalf("TLS over uTP without a client certificate: read %v, want the server's refusal", err)
				}
			}
		})
	}
}

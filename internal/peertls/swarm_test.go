package peertls_test

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
)

// pki writes a CA and certificates into a temp dir and returns the dir.
func pki(tb testing.TB, specs ...peertlstest.CertSpec) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := peertlstest.GeneratePKI(dir, specs...); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func load(tb testing.TB, dir, name string) *tls.Config {
	tb.Helper()
	tc, _, err := peertls.Load(peertlstest.Config(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return tc
}

// rawCert is a certificate for hand-built (hostile) TLS configs.
func rawCert(tb testing.TB, dir, name string) tls.Certificate {
	tb.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func id(tenant, site string) peertls.Identity { return peertls.Identity{Tenant: tenant, Site: site} }

// makeTorrent writes size random bytes to dir/payload and returns its
// metainfo.
func makeTorrent(tb testing.TB, dir string, size, pieceLen int64) *metainfo.MetaInfo {
	tb.Helper()
	p := filepath.Join(dir, "payload")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	r := rand.NewChaCha8([32]byte{'p', 't'})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			tb.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	info := metainfo.Info{PieceLength: pieceLen}
	if err := info.BuildFromFilePath(p); err != nil {
		tb.Fatal(err)
	}
	mi := &metainfo.MetaInfo{}
	if mi.InfoBytes, err = bencode.Marshal(&info); err != nil {
		tb.Fatal(err)
	}
	return mi
}

// newClient starts a swarmship-configured client on loopback, closed when
// the test ends.
func newClient(tb testing.TB, dir string, tc *tls.Config) *torrent.Client {
	tb.Helper()
	cl := startClient(tb, dir, tc)
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// startClient is newClient for callers that close the client themselves.
func startClient(tb testing.TB, dir string, tc *tls.Config) *torrent.Client {
	tb.Helper()
	cl, err := btclient.New(btclient.Config{
		PeerIDPrefix: btclient.AgentPeerIDPrefix,
		ListenHost:   "127.0.0.1",
		DataDir:      dir,
		TLS:          tc,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

// seed adds mi to cl with the payload in dir taken as complete.
func seed(tb testing.TB, cl *torrent.Client, dir string, mi *metainfo.MetaInfo) *torrent.Torrent {
	tb.Helper()
	t, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  mi.HashInfoBytes(),
		InfoBytes: mi.InfoBytes,
		// The budget the agent and origin use (one per client; one torrent here).
		Storage: btclient.NewFileStorage(dir, btclient.TrustedCompletion{}, btclient.WithServeBudget(btclient.NewServeBudget(0))),
	})
	<-t.GotInfo()
	return t
}

// leech adds mi to cl (empty storage in dir), downloading everything.
func leech(tb testing.TB, cl *torrent.Client, dir string, mi *metainfo.MetaInfo) *torrent.Torrent {
	tb.Helper()
	t, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  mi.HashInfoBytes(),
		InfoBytes: mi.InfoBytes,
		Storage:   btclient.NewFileStorage(dir, storage.NewMapPieceCompletion()),
	})
	<-t.GotInfo()
	t.DownloadAll()
	return t
}

func addPeer(t *torrent.Torrent, port int) {
	t.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, Trusted: true}})
}

// waitComplete waits for t to hold every piece, re-adding the peer now and
// then (the client forgets a peer address after a failed dial).
func waitComplete(tb testing.TB, t *torrent.Torrent, port int, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	addPeer(t, port)
	for {
		select {
		case <-t.Complete().On():
			return
		case <-tick.C:
			if len(t.PeerConns()) == 0 {
				addPeer(t, port)
			}
		case <-ctx.Done():
			tb.Fatalf("download incomplete after %v: %d bytes missing", timeout, t.BytesMissing())
		}
	}
}

package seeder

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/release"
)

// RendezvousConfig is the origin's rendezvous peer (BEP 55): a BitTorrent
// client with uTP that holds no data and moves none, joined to every
// served release. The tracker hands its address to site gateways
// (locality=gateway), which stay connected to it; a gateway that cannot
// dial another site's gateway (both behind NAT) asks it to introduce
// them, and both then dial at once over uTP, punching the hole. Off
// unless Listen is set.
type RendezvousConfig struct {
	// Listen is host:port of its TCP and uTP sockets (a fixed port: the
	// firewall must let both in).
	Listen string `yaml:"listen"`
	// Advertise is the address the tracker hands out, host:port with an
	// IP; default Listen, which then must name an IP that is not 0.0.0.0.
	Advertise string `yaml:"advertise"`
}

// On tells whether the rendezvous peer runs.
func (c RendezvousConfig) On() bool { return c.Listen != "" }

// advertised is the address the tracker hands out.
func (c RendezvousConfig) advertised() (netip.AddrPort, error) {
	a := c.Advertise
	if a == "" {
		a = c.Listen
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return ap, err
	}
	if ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return ap, fmt.Errorf("%s is not an address peers can dial", a)
	}
	// Trackers answer IPv4 in 4-byte form; the library matches hole-punch
	// messages by that form.
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (c RendezvousConfig) validate() error {
	if !c.On() {
		if c.Advertise != "" {
			return fielderr.New("advertise", "needs listen")
		}
		return nil
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "0" || port == "" {
		return fielderr.New("listen", "%q: want host:port with a fixed port", c.Listen)
	}
	if _, err := c.advertised(); err != nil {
		key := "advertise"
		if c.Advertise == "" {
			key = "listen"
		}
		return fielderr.New(key, "%v (set advertise to the address agents reach)", err)
	}
	return nil
}

// rendezvous is the running rendezvous peer.
type rendezvous struct {
	cl  *torrent.Client
	dir string // storage root: never written (no data is ever accepted)

	mu       sync.Mutex
	torrents map[string]*torrent.Torrent // by name@version
}

// startRendezvous starts the rendezvous peer and tells the tracker its
// address.
func (o *Origin) startRendezvous() error {
	c := o.cfg.Rendezvous
	if !c.On() {
		return nil
	}
	adv, err := c.advertised()
	if err != nil {
		return fmt.Errorf("origin: rendezvous: %w", err)
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return fmt.Errorf("origin: rendezvous.listen: %w", err)
	}
	peerSrc, err := peertls.Open(o.cfg.PeerTLS, o.log)
	if err != nil {
		return fmt.Errorf("origin: peer_tls: %w", err)
	}
	peerTLS := peerSrc.TLS()
	o.certs = append(o.certs, wrapReload("peer_tls (rendezvous)", peerSrc.Reload))
	dir, err := os.MkdirTemp("", "swarmship-rendezvous-")
	if err != nil {
		return fmt.Errorf("origin: rendezvous: %w", err)
	}
	cl, err := btclient.New(btclient.Config{
		PeerIDPrefix: btclient.OriginPeerIDPrefix,
		ListenHost:   host,
		ListenPort:   p,
		DataDir:      dir,
		TLS:          peerTLS,
		TLSLog:       o.log,
		UTP:          true,
		// PEX would tell every gateway the others' addresses (and the
		// library then sends a rendezvous only where PEX says the target
		// is connected); without it, the library asks every holepunch-
		// capable peer, this one included.
		NoPEX:    true,
		NoUpload: true,
	})
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("origin: rendezvous: %w", err)
	}
	o.rz = &rendezvous{cl: cl, dir: dir, torrents: map[string]*torrent.Torrent{}}
	o.tracker.SetRendezvous(adv)
	o.log.Info("origin rendezvous peer", "listen", c.Listen, "advertise", adv)
	return nil
}

// join adds a release to the rendezvous peer: with its info, so that
// peers are accepted, wanting everything (the library accepts peers only
// for torrents that want data) but disallowed any download, and with no
// tracker (its address comes from the origin's tracker answers).
func (rz *rendezvous) join(ctx context.Context, cat *catalog.Client, m *catalog.Manifest) error {
	ref := m.Ref().String()
	rz.mu.Lock()
	_, have := rz.torrents[ref]
	rz.mu.Unlock()
	if have {
		return nil
	}
	tb, err := cat.Torrent(ctx, m.Name, m.Version)
	if err != nil {
		return err
	}
	tf, err := torrentfile.Parse(tb, m)
	if err != nil {
		return err
	}
	stor := btclient.NewFileStorage(filepath.Join(rz.dir, m.Name), storage.NewMapPieceCompletion())
	t, _ := rz.cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: tf.InfoHash, InfoBytes: tf.MetaInfo.InfoBytes, Storage: stor})
	// In this order: the library counts a piece as wanted (and so keeps
	// peer connections) only if it was marked while downloads were
	// allowed; no peer is connected yet, so nothing is requested between
	// the two calls.
	t.DownloadAll()
	t.DisallowDataDownload()
	rz.mu.Lock()
	rz.torrents[ref] = t
	rz.mu.Unlock()
	return nil
}

func (rz *rendezvous) leave(ref release.Ref) {
	rz.mu.Lock()
	t := rz.torrents[ref.String()]
	delete(rz.torrents, ref.String())
	rz.mu.Unlock()
	if t != nil {
		t.Drop()
	}
}

// RendezvousStats is what the rendezvous peer moved: payload must stay 0.
type RendezvousStats struct {
	Releases, Peers             int
	PayloadRead, PayloadWritten int64
}

// Stats sums the rendezvous peer's connections and payload bytes.
func (rz *rendezvous) Stats() RendezvousStats {
	var s RendezvousStats
	rz.mu.Lock()
	defer rz.mu.Unlock()
	s.Releases = len(rz.torrents)
	for _, t := range rz.torrents {
		ts := t.Stats()
		s.Peers += ts.ActivePeers
		s.PayloadRead += ts.BytesReadData.Int64()
		s.PayloadWritten += ts.BytesWrittenData.Int64()
	}
	return s
}

func (rz *rendezvous) close() error {
	errs := rz.cl.Close()
	os.RemoveAll(rz.dir)
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Rendezvous reports the rendezvous peer's figures; ok is false when it
// is off.
func (o *Origin) Rendezvous() (s RendezvousStats, ok bool) {
	if o.rz == nil {
		return s, false
	}
	return o.rz.Stats(), true
}

// RendezvousPort is the rendezvous peer's port, 0 when off.
func (o *Origin) RendezvousPort() int {
	if o.rz == nil {
		return 0
	}
	return o.rz.cl.LocalPort()
}

package agent

import (
	"errors"
	"net"
	"net/netip"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/internal/keyfile"
	"github.com/swarmship/swarmship/internal/lsd"
)

// Local service discovery (swarm.lsd): agents of one tenant and site find
// each other on the LAN's BEP 14 multicast group, so a site shares a
// release with no tracker and no WAN. What is learned is only a candidate
// peer: its address is the announce's source, it is dialled through the
// same peer TLS as any other, and every piece is hash-checked.

const (
	LSDOn  = "on"
	LSDOff = "off"
)

// peerSourceLSD marks peers learned on the LAN (status shows it).
const peerSourceLSD torrent.PeerSource = "lsd"

// lsdSecret reads swarm.lsd_secret_file ("" when unset), refusing a file
// others can read, as for the token.
func lsdSecret(path string) ([]byte, error) { return secretFile("swarm.lsd_secret_file", path) }

// secretFile reads the tenant secret at path for config key field.
func secretFile(field, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return keyfile.ReadSecret(field, path)
}

// startLSD starts local service discovery if the config asks for it and
// the mode exchanges with peers. A LAN without multicast is no error:
// discovery is a help, the tracker still works.
func (a *Agent) startLSD() error {
	if a.cfg.Swarm.LSD != LSDOn || !a.cfg.Mode.Peers() {
		return nil
	}
	secret, err := lsdSecret(a.cfg.Swarm.LSDSecretFile)
	if err != nil {
		return err
	}
	cfg := lsd.Config{
		Scope: lsd.NewScope(secret, a.cfg.Tenant, a.cfg.Region, a.cfg.Site),
		Port:  a.bt.LocalPort(),
		// A download-only agent serves nobody: it listens, seeders announce.
		ListenOnly: !a.cfg.Mode.Upload(),
		OnPeer:     a.lsdPeer,
		Log:        a.log.With("component", "lsd"),
	}
	if ip, err := netip.ParseAddr(a.cfg.Swarm.ListenHost); err == nil && !ip.IsUnspecified() {
		cfg.Source = ip.Unmap()
	}
	s := lsd.New(cfg)
	if err := s.Start(); errors.Is(err, lsd.ErrNoInterface) {
		a.log.Debug("local service discovery off: no multicast interface for the peer address", "listen_host", a.cfg.Swarm.ListenHost)
		return nil
	} else if err != nil {
		a.log.Warn("local service discovery unavailable; peers come from the tracker only", "err", err)
		return nil
	}
	a.lsd = s
	return nil
}

// lsdPeer adds a peer learned on the LAN to the release it announced.
func (a *Agent) lsdPeer(ih [20]byte, addr netip.AddrPort) { a.addFoundPeer(ih, addr, peerSourceLSD) }

// addFoundPeer adds a peer that discovery (LSD, DHT) found for the
// release with infohash ih, if the agent holds it.
func (a *Agent) addFoundPeer(ih [20]byte, addr netip.AddrPort, source torrent.PeerSource) {
	v, ok := a.byHash.Load(metainfo.Hash(ih))
	if !ok {
		return
	}
	d := v.(*download)
	d.t.AddPeers([]torrent.PeerInfo{{
		Addr:   &net.TCPAddr{IP: addr.Addr().AsSlice(), Port: int(addr.Port()), Zone: addr.Addr().Zone()},
		Source: source,
	}})
}

// LSDStats are the discovery counters, nil when it is off.
func (a *Agent) LSDStats() *lsd.Stats {
	if a.lsd == nil {
		return nil
	}
	st := a.lsd.Stats()
	return &st
}

// peerSourceName is how status names where a peer came from.
func peerSourceName(s torrent.PeerSource) string {
	switch s {
	case torrent.PeerSourceTracker:
		return "tracker"
	case torrent.PeerSourceIncoming:
		return "incoming"
	case torrent.PeerSourcePex:
		return "pex"
	case torrent.PeerSourceDhtGetPeers, torrent.PeerSourceDhtAnnouncePeer:
		return "dht"
	case torrent.PeerSourceDirect:
		return "direct"
	case torrent.PeerSourceUtHolepunch:
		return "holepunch"
	case "":
		return "other"
	}
	return string(s)
}

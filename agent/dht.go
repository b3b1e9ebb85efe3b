package agent

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/internal/dht"
	"github.com/swarmship/swarmship/internal/fielderr"
)

// The tenant's private DHT (swarm.dht): agents announce their releases
// and find each other with no tracker, under targets derived from the
// tenant key, the scope the locality allows and the infohash, on a DHT
// whose datagrams only the tenant's nodes can open. What is found is a
// candidate peer only: dialled through the same peer TLS as any other,
// every piece hash-checked.

const (
	DHTOn  = "on"
	DHTOff = "off"
)

// dhtNodesFile is the saved node table, under the state directory.
const dhtNodesFile = "dht-nodes.json"

func (c SwarmConfig) validateDHT() error {
	switch c.DHT {
	case DHTOn, DHTOff:
	default:
		return fielderr.New("dht", "%q: want on or off", c.DHT)
	}
	if c.DHT == DHTOff && (c.DHTSecretFile != "" || len(c.DHTBootstrap) > 0 || c.DHTPort != 0) {
		return fielderr.New("dht", "dht_secret_file, dht_bootstrap or dht_port is set but dht is off")
	}
	if c.DHT == DHTOn && c.DHTSecretFile == "" {
		// Fail closed: a key derived from the tenant's name alone lets
		// anyone who knows the name read and write the tenant's DHT.
		return fielderr.New("dht_secret_file", "is required with dht: on (without it anyone who knows the tenant's name can join its DHT)")
	}
	if c.DHT == DHTOn && c.Relay == RelayOrigin {
		return fielderr.New("dht", "on announces the agent's address to the tenant's DHT, which relay: %s keeps private", RelayOrigin)
	}
	if c.DHTPort < 0 || c.DHTPort > 65535 {
		return fielderr.New("dht_port", "%d is not a port", c.DHTPort)
	}
	if c.DHTPort != 0 && c.DHTPort == c.ListenPort && c.UTP == "on" {
		return fielderr.New("dht_port", "%d is the listen port, whose UDP side uTP uses", c.DHTPort)
	}
	for i, b := range c.DHTBootstrap {
		_, port, err := net.SplitHostPort(b)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 1 || p > 65535 {
			return fielderr.New(fielderr.Index("dht_bootstrap", i), "%q: want host:port", b)
		}
	}
	return nil
}

// dhtScopes are the scopes a release is announced and looked up in,
// following the locality (policy: which peers an agent may exchange
// with) and residency (a release restricted to regions is found over
// the DHT only inside the agent's own region; the tracker still joins
// the allowed regions). In gateway mode the wider scopes are a fallback,
// looked up (and announced in) only while the site has nobody: the
// site's first agent bridges, the others share inside the site.
func dhtScopes(locality, region, site string, restricted bool) (scopes, fallback []dht.Scope) {
	if locality == "gateway" && site == "" {
		locality = "any" // as for the tracker: no site, no gateway
	}
	siteScope := []dht.Scope{dht.SiteScope(region, site)}
	wide := []dht.Scope{dht.RegionScope(region)}
	if !restricted {
		wide = append(wide, dht.TenantScope())
	}
	switch locality {
	case "site":
		return siteScope, nil
	case "region":
		return append(siteScope, dht.RegionScope(region)), nil
	case "any":
		return append(siteScope, wide...), nil
	}
	return siteScope, wide
}

// startDHT joins the tenant's DHT if the config asks for it and the mode
// exchanges with peers. A socket that cannot be opened is an error; an
// empty DHT is not (the trackers still work).
func (a *Agent) startDHT() error {
	sc := a.cfg.Swarm
	if sc.DHT != DHTOn || !a.cfg.Mode.Peers() {
		return nil
	}
	secret, err := secretFile("swarm.dht_secret_file", sc.DHTSecretFile)
	if err != nil {
		return err
	}
	cfg := dht.Config{
		Key:       dht.NewKey(secret, a.cfg.Tenant),
		Listen:    net.JoinHostPort(sc.ListenHost, strconv.Itoa(sc.DHTPort)),
		Bootstrap: sc.DHTBootstrap,
		NodesFile: filepath.Join(a.cfg.CacheDir, "state", dhtNodesFile),
		OnPeer:    a.dhtPeer,
		Log:       a.log.With("component", "dht"),
	}
	// A download-only agent serves nobody: it looks up, others announce.
	if a.cfg.Mode.Upload() {
		cfg.Port = a.bt.LocalPort()
	}
	n, err := dht.Start(cfg)
	if err != nil {
		return err
	}
	a.dht = n
	return nil
}

// dhtAdd announces a release on the DHT in the scopes it may be shared.
func (a *Agent) dhtAdd(ih metainfo.Hash, regions []string) {
	if a.dht == nil {
		return
	}
	scopes, fallback := dhtScopes(a.cfg.Swarm.Locality, a.cfg.Region, a.cfg.Site, len(regions) > 0)
	a.dht.Add(ih, scopes, fallback)
}

// dhtRoster puts the agent on the release's roster in the tenant's DHT
// (internal/dht roster.go) and makes that roster the offload's swarm view
// whenever no tracker's list is fresh: agents then divide the origin's
// pieces over every downloader of the tenant, not over the peers they are
// connected to (a site's own, with locality gateway), which sent each
// site its own copy from the origin (testbed, TRACKER=down: 2.75 copies).
// Only in the localities that use a swarm view at all, and only for an
// agent that announces (a download-only agent is on nobody's roster);
// the offload leaves the roster while a tracker's list is fresh.
func (a *Agent) dhtRoster(d *download, ih metainfo.Hash, regions []string) {
	l := a.cfg.Swarm.Locality
	if a.dht == nil || !a.cfg.Mode.Upload() || (l != "gateway" && l != "any") {
		return
	}
	// A restricted release is found over the DHT only within the region
	// (dhtScopes): its roster stays there too.
	scope := dht.TenantScope()
	if len(regions) > 0 {
		scope = dht.RegionScope(a.cfg.Region)
	}
	n := a.dht
	d.off.roster = func() (netip.AddrPort, []netip.AddrPort, bool) { return n.Roster(ih, listMaxAge) }
	d.off.joinRoster = func() { n.AddRoster(ih, scope) }
	d.off.leaveRoster = func() { n.RemoveRoster(ih) }
	// From the start: the tracker's first answer is not there yet, and a
	// roster joined late is short while the offload begins.
	d.off.joinRoster()
}

// dhtPeer adds a peer found on the DHT to its release.
func (a *Agent) dhtPeer(ih [20]byte, addr netip.AddrPort) {
	a.addFoundPeer(ih, addr, torrent.PeerSourceDhtGetPeers)
}

// DHTStats are the DHT's counters, nil when it is off.
func (a *Agent) DHTStats() *dht.Stats {
	if a.dht == nil {
		return nil
	}
	st := a.dht.Stats()
	return &st
}

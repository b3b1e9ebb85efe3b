package seeder

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/swarmship/swarmship/internal/dht"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/keyfile"
	"github.com/swarmship/swarmship/internal/release"
)

// DHTTenant runs the origin's node in one tenant's private DHT: the node
// agents of the tenant bootstrap from (swarm.dht_bootstrap). One node
// per tenant, each on its own port and key, so that no routing table or
// peer store ever mixes two tenants.
type DHTTenant struct {
	Tenant string `yaml:"tenant"`
	// Listen is the node's UDP address, host:port (a fixed port: agents
	// name it).
	Listen string `yaml:"listen"`
	// SecretFile is the tenant's DHT secret, the agents'
	// swarm.dht_secret_file (required).
	SecretFile string `yaml:"secret_file"`
}

func validateDHT(ts []DHTTenant) error {
	seen := map[string]bool{}
	for i, t := range ts {
		f := fielderr.Index("dht", i)
		if err := release.ValidateName("tenant", t.Tenant); err != nil {
			return fielderr.New(fielderr.Join(f, "tenant"), "%v", err)
		}
		if seen[t.Tenant] {
			return fielderr.New(fielderr.Join(f, "tenant"), "%q is listed twice", t.Tenant)
		}
		seen[t.Tenant] = true
		if _, _, err := net.SplitHostPort(t.Listen); err != nil {
			return fielderr.New(fielderr.Join(f, "listen"), "%q: want host:port", t.Listen)
		}
		if t.SecretFile == "" {
			// As for the agents: no key from the tenant's name alone.
			return fielderr.New(fielderr.Join(f, "secret_file"), "is required (without it anyone who knows the tenant's name can join its DHT)")
		}
	}
	return nil
}

// startDHT starts a node per configured tenant.
func (o *Origin) startDHT() error {
	for _, t := range o.cfg.DHT {
		secret, err := keyfile.ReadSecret("dht.secret_file", t.SecretFile)
		if err != nil {
			return err
		}
		cfg := dht.Config{Key: dht.NewKey(secret, t.Tenant), Listen: t.Listen, Log: o.log.With("component", "dht", "tenant", t.Tenant)}
		if o.cfg.CacheDir != "" {
			cfg.NodesFile = filepath.Join(o.cfg.CacheDir, "dht-"+t.Tenant+".json")
		}
		n, err := dht.Start(cfg)
		if err != nil {
			return fmt.Errorf("origin: dht of tenant %s: %w", t.Tenant, err)
		}
		o.dht = append(o.dht, n)
	}
	return nil
}

// DHTAddrs are the DHT nodes' addresses by tenant.
func (o *Origin) DHTAddrs() map[string]netip.AddrPort {
	m := map[string]netip.AddrPort{}
	for i, n := range o.dht {
		m[o.cfg.DHT[i].Tenant] = n.Addr()
	}
	return m
}

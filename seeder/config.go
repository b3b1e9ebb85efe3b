package seeder

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/yamlconfig"
	"github.com/swarmship/swarmship/seeder/catalogfeed"
	"github.com/swarmship/swarmship/seeder/rollout"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Config is the origin's configuration (origin.yaml), composed of its
// components' sections; each section owns its defaults and validation.
type Config struct {
	// Catalog and Root say where the catalog is and which root.json to
	// trust, as --catalog and --root do (the flags win). New takes the
	// opened store and client instead.
	Catalog string `yaml:"catalog"`
	Root    string `yaml:"root"`

	Listen          string         `yaml:"listen"`           // HTTP: tracker, web seed, health, metrics
	CacheDir        string         `yaml:"cache_dir"`        // state: payload copies of remote catalogs, TUF cache, reports.db
	Seed            *bool          `yaml:"seed"`             // run the seeding client (default true)
	PeerPort        int            `yaml:"peer_port"`        // BitTorrent port of the seeder; 0 = free port
	PeerHost        string         `yaml:"peer_host"`        // listen host of the seeder
	RefreshInterval time.Duration  `yaml:"refresh_interval"` // catalog re-read interval
	Tracker         tracker.Config `yaml:"tracker"`
	Reports         rollout.Config `yaml:"reports"` // agent reports, rollout view, alerts
	// Events is the catalog change stream agents watch (catalogfeed).
	Events catalogfeed.Config `yaml:"events"`
	// State says where what several origins share lives: memory (the
	// default, one origin) or a Redis all origins use (docs/operations.md).
	State state.Config `yaml:"state"`
	// AnnounceURL is the tracker URL the seeder announces to; default
	// http://<listen>/announce.
	AnnounceURL string `yaml:"announce_url"`
	// TokenPublicKey (token.pub from `swarmship token keygen`) makes the
	// tracker require a valid token whose tenant, site and region match
	// the announce.
	TokenPublicKey string `yaml:"token_public_key"`
	// PrivateCatalog also requires a token to read the catalog and the
	// web seed over HTTP.
	PrivateCatalog bool `yaml:"private_catalog"`
	// RevocationList is a file of revoked token ids or fingerprints, one
	// per line (`swarmship token revoke`), re-read when it changes and on
	// SIGHUP; a revoked token is refused everywhere.
	RevocationList string `yaml:"revocation_list"`
	// PeerTLS makes the seeder's peer connections mutual TLS.
	PeerTLS peertls.Config `yaml:"peer_tls"`
	// TLS makes Listen serve HTTPS (see TLSConfig).
	TLS TLSConfig `yaml:"tls"`
	// DHT lists the tenants whose private DHT the origin bootstraps
	// (seeder/dht.go); empty: none.
	DHT []DHTTenant `yaml:"dht"`
	// Relay carries peer connections of relay-mode agents
	// (internal/relay); off by default.
	Relay relay.Config `yaml:"relay"`
	// Rendezvous runs a data-less peer that site gateways stay connected
	// to, so NATed sites can hole-punch to each other (seeder/rendezvous.go);
	// off by default.
	Rendezvous RendezvousConfig `yaml:"rendezvous"`
}

// WithDefaults returns c with unset fields filled. The tracker and the
// reports fill their own sections when they start.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":7070"
	}
	if c.Seed == nil {
		t := true
		c.Seed = &t
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 30 * time.Second
	}
	c.State = c.State.WithDefaults()
	c.Relay = c.Relay.WithDefaults()
	return c
}

// Validate checks the config after defaults are applied, without reading
// files. A field error (internal/fielderr) names the field's full path,
// e.g. "tracker.peer_ttl"; ParseConfig adds the file and line.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fielderr.New("listen", "%q: want host:port or :port", c.Listen)
	}
	if c.PeerPort < 0 || c.PeerPort > 65535 {
		return fielderr.New("peer_port", "%d is not a port", c.PeerPort)
	}
	if c.RefreshInterval < time.Second {
		return fielderr.New("refresh_interval", "must be at least 1s")
	}
	if c.AnnounceURL != "" {
		u, err := url.Parse(c.AnnounceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fielderr.New("announce_url", "%q is not an http(s) announce URL", c.AnnounceURL)
		}
	}
	if c.TokenPublicKey == "" {
		if c.PrivateCatalog {
			return fielderr.New("private_catalog", "needs token_public_key")
		}
		if c.RevocationList != "" {
			return fielderr.New("revocation_list", "needs token_public_key")
		}
	}
	if err := validateDHT(c.DHT); err != nil {
		return err
	}
	for _, section := range []struct {
		key string
		err error
	}{
		{"tracker", c.Tracker.Validate()},
		{"reports", c.Reports.Validate()},
		{"events", c.Events.Validate()},
		{"state", c.State.Validate()},
		{"peer_tls", c.PeerTLS.Validate()},
		{"tls", c.TLS.validate()},
		{"relay", c.Relay.Validate()},
		{"rendezvous", c.Rendezvous.validate()},
	} {
		if err := fielderr.In(section.key, section.err); err != nil {
			return err
		}
	}
	return nil
}

// Finish applies defaults and validates a config built in code or changed
// by flags after loading.
func (c *Config) Finish() error {
	*c = c.WithDefaults()
	return c.Validate()
}

// LoadConfig reads and validates origin.yaml. Unknown fields are refused;
// errors name the file, the line and the field. override, if not nil,
// changes the decoded config before defaults and validation (command-line
// flags win over the file).
func LoadConfig(path string, override func(*Config)) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("origin config: %w", err)
	}
	return ParseConfig(path, b, override)
}

// ParseConfig is LoadConfig on bytes; name is used in error messages.
func ParseConfig(name string, b []byte, override func(*Config)) (*Config, error) {
	var c Config
	finish := func() error {
		if override != nil {
			override(&c)
		}
		return c.Finish()
	}
	if err := yamlconfig.Parse(name, b, &c, finish); err != nil {
		return nil, err
	}
	return &c, nil
}

// validate checks the HTTPS settings without reading the files (ServerConfig
// reads them).
func (c TLSConfig) validate() error {
	if (c.Cert == "") != (c.Key == "") {
		return fielderr.New("cert", "cert and key go together")
	}
	switch c.ClientAuth {
	case "", "optional", "required":
	default:
		return fielderr.New("client_auth", "%q: want optional or required", c.ClientAuth)
	}
	if c.ClientAuth != "" && c.ClientCA == "" {
		return fielderr.New("client_auth", "needs client_ca")
	}
	if c.ClientCA != "" && !c.Enabled() {
		return fielderr.New("client_ca", "needs cert and key (client certificates are checked over HTTPS only)")
	}
	return nil
}

package agent

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/failover"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/mediaserve"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/tracing"
	"github.com/swarmship/swarmship/internal/yamlconfig"
	"github.com/swarmship/swarmship/policy"
)

// Config is an agent's configuration, read from YAML. It is composed of
// its components' configs; each owns its defaults.
type Config struct {
	Catalog CatalogConfig `yaml:"catalog"`
	Tracker string        `yaml:"tracker"` // announce URL of the origin's tracker; empty: none
	Site    string        `yaml:"site"`
	Region  string        `yaml:"region"`
	Tenant  string        `yaml:"tenant"`
	// Labels place the agent in label waves of rollout plans
	// (`--waves label:canary,...`) and select fleet policy documents
	// (assign.labels), e.g. [stores, eu-north].
	Labels []string `yaml:"labels"`
	// Token (or TokenFile) is the access token from `swarmship token
	// issue`, sent to the tracker and to a private catalog.
	Token         string         `yaml:"token"`
	TokenFile     string         `yaml:"token_file"`
	CacheDir      string         `yaml:"cache_dir"`
	Subscriptions []Subscription `yaml:"subscriptions"`
	Swarm         SwarmConfig    `yaml:"swarm"`
	Offload       OffloadConfig  `yaml:"offload"`
	Status        StatusConfig   `yaml:"status"`
	Hooks         HooksConfig    `yaml:"hooks"`
	Report        ReportConfig   `yaml:"report"`
	// RefreshInterval is how often the catalog is re-read.
	RefreshInterval time.Duration `yaml:"refresh_interval"`

	// PeerTLS makes peer connections mutual TLS (see internal/peertls).
	PeerTLS peertls.Config `yaml:"peer_tls"`
	// TLS checks the origin's HTTPS certificate (see OriginTLSConfig).
	TLS OriginTLSConfig `yaml:"tls"`

	// TimeZone is the site's IANA zone for schedules; default UTC.
	TimeZone string `yaml:"timezone"`
	// Rates are bandwidth profiles chosen by a weekly schedule.
	Rates RatesConfig `yaml:"rates"`
	// Deadline says what the agent may do to meet a deliver-by time its
	// download windows cannot (windows.go).
	Deadline DeadlineConfig `yaml:"deadline"`
	// Mode is on, download-only, origin-only or offline.
	Mode policy.Mode `yaml:"mode"`
	// CacheQuota bounds the release cache, e.g. "20GiB" (units as
	// internal/bytesize reads them); 0: no quota.
	CacheQuota bytesize.Size `yaml:"cache_quota"`
	// Tracing exports OpenTelemetry spans (catalog refresh, download,
	// verify, activate) over OTLP when an endpoint is set.
	Tracing tracing.Config `yaml:"tracing"`
	// AuditLog records every activation (default cache_dir/state/audit.jsonl).
	AuditLog string      `yaml:"audit_log"`
	Power    PowerConfig `yaml:"power"`

	// Trackers are announce URLs in tiers (BEP 12), instead of Tracker:
	// tiers in order, each shuffled once, a tracker that answers first in
	// its tier (see TrackerTiers).
	Trackers [][]string `yaml:"trackers"`
	// Failover says how long catalog mirrors, trackers and offload
	// sources may take and how long one that failed is skipped.
	Failover failover.Config `yaml:"failover"`
	// SelfUpdate follows a release holding the swarmship binary and
	// replaces this one with it (selfupdate.go); off unless release is set.
	SelfUpdate SelfUpdateConfig `yaml:"self_update"`
	// Signage follows a signed signage schedule and serves each screen's
	// playlist to the site's players (signage.go, screens.go).
	Signage SignageConfig `yaml:"signage"`
	// Media serves held releases to the site's players over HTTP
	// (internal/mediaserve, agent/mediaserver.go); off unless listen is set.
	Media mediaserve.Config `yaml:"media"`

	// TestNoUpload makes the agent serve no piece data to anyone: a
	// freeloader for the contribution ledger's tests. Not a config key.
	TestNoUpload bool `yaml:"-"`
	// TestLedgerStall replaces the ledger's stall timeout (tests); 0:
	// the default. Not a config key.
	TestLedgerStall time.Duration `yaml:"-"`
}

// RatesConfig names rate profiles and when each applies. The first
// matching schedule rule wins; outside every rule Default applies.
type RatesConfig struct {
	Profiles []policy.RateProfile `yaml:"profiles"`
	Schedule []policy.Rule        `yaml:"schedule"`
	Default  string               `yaml:"default"`
}

// PowerConfig says what counts as metered and how low the battery may go.
type PowerConfig struct {
	policy.PowerRules `yaml:",inline"`
	// SysfsRoot is where /sys lives (tests point it elsewhere).
	SysfsRoot string `yaml:"sysfs_root"`
	// NetworkManager "auto" (the default) also takes the OS's metered
	// flag from NetworkManager when it runs; "off" never asks it.
	NetworkManager string `yaml:"network_manager"`
}

// CatalogConfig says where the signed catalog is and which root to trust.
type CatalogConfig struct {
	URL string `yaml:"url"` // directory, s3://bucket/prefix or http(s)://mirror
	// URLs are mirrors of one catalog, preferred in order, instead of URL
	// (see Mirrors): TUF verifies whatever any of them serves.
	URLs []string `yaml:"urls"`
	Root string   `yaml:"root"` // pinned root.json
	S3   struct {
		Endpoint  string `yaml:"endpoint"`
		Region    string `yaml:"region"`
		AccessKey string `yaml:"access_key"`
		SecretKey string `yaml:"secret_key"`
	} `yaml:"s3"`
	// Watch follows the origin's catalog change stream: "auto" (default)
	// where the http(s) catalog offers it, "off" to poll only. Either
	// way refresh_interval polling stays the fallback.
	Watch string `yaml:"watch"`
}

// Mirrors returns the catalog's locations: URLs, or URL alone.
func (c CatalogConfig) Mirrors() []string {
	if len(c.URLs) > 0 {
		return c.URLs
	}
	if c.URL == "" {
		return nil
	}
	return []string{c.URL}
}

// TrackerTiers returns the announce tiers: Trackers, or Tracker alone.
func (c *Config) TrackerTiers() [][]string {
	if len(c.Trackers) > 0 {
		return c.Trackers
	}
	if c.Tracker == "" {
		return nil
	}
	return [][]string{{c.Tracker}}
}

// trackerURLs returns every announce URL, tier by tier.
func (c *Config) trackerURLs() []string {
	var out []string
	for _, tier := range c.TrackerTiers() {
		out = append(out, tier...)
	}
	return out
}

// S3Config converts the YAML S3 settings for catalog.OpenStore.
func (c CatalogConfig) S3Config() catalog.S3Config {
	return catalog.S3Config{Endpoint: c.S3.Endpoint, Region: c.S3.Region, AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey}
}

// Subscription names a release the agent keeps: a channel of it, a pinned
// version, or (neither) its newest version.
type Subscription struct {
	Name    string `yaml:"name"`
	Channel string `yaml:"channel"`
	Version string `yaml:"version"`
	// Keep is how many previous versions stay cached for rollback.
	Keep int `yaml:"keep"`
	// Windows, if set, allow downloading only inside them (pre-seeding,
	// e.g. "daily 22:00-06:00"); Urgent ignores metered/battery rules.
	Windows []policy.Window `yaml:"windows"`
	Urgent  bool            `yaml:"urgent"`
	// Activate are weekly windows in which a downloaded release may
	// switch ("Sun 02:00-04:00"); ActivateAt is the instant it may
	// (signage on air at a set time); DeliverBy is when the bytes should
	// be in (see deadline). The release's own timing in the catalog
	// applies too: both must allow the switch.
	Activate   []policy.Window `yaml:"activate"`
	ActivateAt time.Time       `yaml:"activate_at"`
	DeliverBy  time.Time       `yaml:"deliver_by"`
	// entry is the release's signed timing, set per pass (reconcile).
	entry catalog.Timing
}

func (s Subscription) String() string {
	switch {
	case s.Version != "":
		return release.Format(s.Name, s.Version)
	case s.Channel != "":
		return s.Name + " (channel " + s.Channel + ")"
	}
	return s.Name + " (latest)"
}

// SwarmConfig tunes the BitTorrent client.
type SwarmConfig struct {
	ListenPort int    `yaml:"listen_port"` // 0 picks a free port
	ListenHost string `yaml:"listen_host"` // default all interfaces
	MaxConns   int    `yaml:"max_conns"`   // established connections per torrent
	// UTP is "on" to accept and dial peers over uTP too (UDP, the listen
	// port's number), under peer TLS when that is required: agents behind
	// NAT then reach each other through a hole punched by a peer both are
	// connected to (BEP 55). "off" (default): TCP only.
	UTP string `yaml:"utp"`
	// Locality limits which peers an agent exchanges with:
	//   - "gateway" (default): its own site's agents; one agent per site and
	//     release, the site's gateway, also exchanges with the other sites'
	//     gateways, so each piece crosses the site's WAN link about once.
	//     Without a site it is "any".
	//   - "any": nearest first, then the rest.
	//   - "region" or "site": only that tier (a branch that must not share
	//     over the WAN: its agents fetch one copy from the origin and share
	//     it inside the site).
	// Every mode but "any" turns peer exchange off: it would hand out the
	// peers the tracker kept away.
	Locality string `yaml:"locality"`
	// Order is the order pieces are asked for:
	//   - "verify" (default): the pieces just past the first missing one
	//     first (a window of 8 MiB, rarest first within it), so each
	//     file's SHA-256 is computed while the download runs and the
	//     release is active moments after its last piece;
	//   - "rarest": the library's order (rarest first, then by index).
	Order string `yaml:"order"`
	// LSD is BEP 14 local service discovery: "on" (default) announces the
	// agent's releases on the LAN's multicast group and adds agents of
	// the same tenant and site that announce them as peers, so a site
	// shares with no tracker and no WAN; "off" leaves it out. Same-site
	// peers are allowed in every locality, so it is on for all of them.
	LSD string `yaml:"lsd"`
	// LSDSecretFile holds a secret shared by the tenant's agents (mode
	// 0600, at least 16 bytes) that keys the announces' cookie: without
	// it tenants and sites are still kept apart, but anyone who knows
	// their names can forge an announce (see docs/security.md).
	LSDSecretFile string `yaml:"lsd_secret_file"`
	// DHT is the tenant's private DHT (internal/dht): "on" announces the
	// agent's releases there and adds the agents of the tenant it finds
	// as peers, so discovery outlives the trackers; "off" (default)
	// leaves it out. It needs DHTBootstrap or a node table saved by an
	// earlier run.
	DHT string `yaml:"dht"`
	// DHTSecretFile holds the tenant's DHT secret (mode 0600, at least 16
	// bytes), the same on its agents and in the origin's dht section;
	// required with DHT on.
	DHTSecretFile string `yaml:"dht_secret_file"`
	// DHTBootstrap are host:port of the origins' DHT nodes for the tenant.
	DHTBootstrap []string `yaml:"dht_bootstrap"`
	// DHTPort is the DHT's UDP port; 0 reuses the last one, or any.
	DHTPort int `yaml:"dht_port"`
	// Relay is "never" (default) or "origin": every peer connection goes
	// through the origin's relay and no peer learns the agent's address
	// nor it theirs (see relay.go). It turns peer exchange and, unless
	// set, LSD off.
	Relay string `yaml:"relay"`
	// DSCP marks every peer packet (IPv4 TOS, IPv6 traffic class) with a
	// DiffServ code point, so that networks can queue peer traffic in its
	// own class, e.g. LE or CS1 (scavenger): a name (CS0-CS7, AF11-AF43,
	// EF, VA, LE) or a number 0-63. Unset: the system's default (0).
	DSCP string `yaml:"dscp"`
}

// OffloadConfig tunes how agents share the origin's work (see offload.go).
type OffloadConfig struct {
	// StartupGrace is how long a new download waits for peers before it
	// fetches its shard from the origin, so that agents that start together
	// see each other before dividing the work.
	StartupGrace time.Duration `yaml:"startup_grace"`
	// OrphanTimeout is how long a piece that no connected peer has may stay
	// missing before the next agent in its rendezvous order fetches it too.
	OrphanTimeout time.Duration `yaml:"orphan_timeout"`
	// Parallel is the number of concurrent range requests to the origin.
	Parallel int `yaml:"parallel"`
	// SiteWANDown is the site's WAN downlink, shared by its agents
	// (0: unknown, no pacing). While agents of other sites are in the
	// swarm, the site's origin fetches together use at most OriginShare
	// of it, so that other sites' pieces, which keep their uplinks busy,
	// are not crowded off the link (see offloader.pace).
	SiteWANDown policy.Rate `yaml:"site_wan_down"`
	// OriginShare is that fraction, in (0, 1]; default 0.6.
	OriginShare float64 `yaml:"origin_share"`
	// Sources are where the payload is fetched from (catalog locations:
	// origins, buckets, HTTP mirrors), preferred in order; empty: the
	// catalog's own mirrors. Pieces are hash-checked whatever serves them.
	Sources []string `yaml:"sources"`
}

// StatusConfig is the local status API.
type StatusConfig struct {
	Addr string `yaml:"addr"` // loopback address; "off" disables it
	// Hosts are extra names the API answers to; requests naming any other
	// Host than localhost or a loopback address get 403 (a web page
	// that rebinds its DNS name to 127.0.0.1 must not read the API).
	Hosts []string `yaml:"hosts"`
}

// HooksConfig names commands run on release events.
type HooksConfig struct {
	PostActivate string `yaml:"post_activate"`
	// Timeout bounds each hook run.
	Timeout time.Duration `yaml:"timeout"`
	// HealthCheck runs after post_activate; its failure rolls the
	// release back (agent/health.go).
	HealthCheck HealthCheckConfig `yaml:"health_check"`
}

// HealthCheckConfig is hooks.health_check: a command run through /bin/sh
// that exits 0 when the activated release works.
type HealthCheckConfig struct {
	Command string `yaml:"command"`
	// Timeout bounds one run (default hooks.timeout); running out fails.
	Timeout time.Duration `yaml:"timeout"`
}

// withDefaults fills unset fields; each section fills its own.
func (c Config) withDefaults() Config {
	if c.RefreshInterval == 0 {
		c.RefreshInterval = time.Minute
	}
	if c.AuditLog == "" && c.CacheDir != "" {
		c.AuditLog = filepath.Join(c.CacheDir, "state", "audit.jsonl")
	}
	if c.Mode == "" {
		c.Mode = policy.ModeOn
	}
	if c.Catalog.Watch == "" {
		c.Catalog.Watch = WatchAuto
	}
	c.Swarm = c.Swarm.withDefaults()
	c.Offload = c.Offload.withDefaults()
	c.Status = c.Status.withDefaults()
	c.Hooks = c.Hooks.withDefaults()
	c.Power = c.Power.withDefaults()
	c.Report = c.Report.withDefaults()
	c.Failover = c.Failover.WithDefaults()
	c.SelfUpdate = c.SelfUpdate.withDefaults()
	c.Media = c.Media.WithDefaults()
	subs := make([]Subscription, len(c.Subscriptions))
	for i, s := range c.Subscriptions {
		subs[i] = s.withDefaults()
	}
	if c.Subscriptions != nil {
		c.Subscriptions = subs
	}
	return c
}

// Validate checks the config after defaults are applied. A field error
// (internal/fielderr) names the field's full path, e.g.
// "subscriptions[1].name"; ParseConfig adds the file and line.
func (c *Config) Validate() error {
	if err := fielderr.In("catalog", c.Catalog.validate()); err != nil {
		return err
	}
	if c.CacheDir == "" {
		return fielderr.New("cache_dir", "is required")
	}
	if c.Tracker != "" {
		if err := checkAnnounceURL(c.Tracker); err != nil {
			return fielderr.New("tracker", "%v", err)
		}
		if len(c.Trackers) > 0 {
			return fielderr.New("trackers", "give tracker or trackers, not both")
		}
	}
	for i, tier := range c.Trackers {
		if len(tier) == 0 {
			return fielderr.New(fielderr.Index("trackers", i), "is an empty tier")
		}
		for j, u := range tier {
			if err := checkAnnounceURL(u); err != nil {
				return fielderr.New(fielderr.Index(fielderr.Index("trackers", i), j), "%v", err)
			}
		}
	}
	for _, f := range []struct{ name, v string }{{"site", c.Site}, {"region", c.Region}, {"tenant", c.Tenant}} {
		if f.v != "" {
			if err := release.ValidateName(f.name, f.v); err != nil {
				return fielderr.New(f.name, "%v", err)
			}
		}
	}
	if len(c.Labels) > maxLabels {
		return fielderr.New("labels", "more than %d labels", maxLabels)
	}
	for i, l := range c.Labels {
		if err := release.ValidateName("label", l); err != nil {
			return fielderr.New(fielderr.Index("labels", i), "%v", err)
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		return fielderr.New("token", "give token or token_file, not both")
	}
	// A token keeps strangers off the tracker and the catalog, but the peer
	// port would still hand the payload to anyone who knows an infohash:
	// with tokens, peers must authenticate too (mutual TLS).
	if (c.Token != "" || c.TokenFile != "") && c.Mode.Peers() && !c.PeerTLS.Enabled() {
		field := "token"
		if c.TokenFile != "" {
			field = "token_file"
		}
		return fielderr.New(field, "a token needs peer_tls mode %s: without it any client that knows an infohash downloads private releases from this agent's peer port (or use mode origin-only)", peertls.ModeRequired)
	}
	if len(c.Subscriptions) == 0 && !c.SelfUpdate.Enabled() {
		return fielderr.New("subscriptions", "lists no releases")
	}
	seen := map[string]bool{}
	for i, s := range c.Subscriptions {
		at := fielderr.Index("subscriptions", i)
		if err := fielderr.In(at, s.validate()); err != nil {
			return err
		}
		if seen[s.Name] {
			return fielderr.New(at+".name", "%s is subscribed twice", s.Name)
		}
		seen[s.Name] = true
	}
	if seen[c.SelfUpdate.Release] {
		return fielderr.New("self_update.release", "%s is also in subscriptions: self_update subscribes to it", c.SelfUpdate.Release)
	}
	for _, section := range []struct {
		key string
		err error
	}{
		{"swarm", c.Swarm.validate()},
		{"peer_tls", c.PeerTLS.Validate()},
		{"tls", c.TLS.validate()},
		{"offload", c.Offload.validate()},
		{"status", c.Status.validate()},
		{"hooks", c.Hooks.validate()},
		{"rates", c.Rates.validate()},
		{"deadline", c.Deadline.validate(c.Rates)},
		{"tracing", c.Tracing.Validate()},
		{"power", c.Power.validate()},
		{"report", c.Report.validate()},
		{"failover", c.Failover.Validate()},
		{"self_update", c.SelfUpdate.validate()},
		{"signage", c.Signage.validate()},
		{"media", c.Media.Validate()},
	} {
		if err := fielderr.In(section.key, section.err); err != nil {
			return err
		}
	}
	for i, n := range c.Media.Releases {
		if !seen[n] {
			return fielderr.New(fielderr.Index("media.releases", i), "%s is not in subscriptions: the agent serves only releases it holds", n)
		}
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return fielderr.New("timezone", "%v", err)
		}
	}
	if c.CacheQuota < 0 {
		return fielderr.New("cache_quota", "must not be negative")
	}
	if c.Mode == policy.ModeOffline {
		for _, m := range c.Catalog.Mirrors() {
			if u := strings.ToLower(m); strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "https:") || strings.HasPrefix(u, "s3:") {
				return fielderr.New("catalog.url", "mode offline reads a bundle directory (swarmship bundle import), not %s", m)
			}
		}
	}
	if c.RefreshInterval < time.Second {
		return fielderr.New("refresh_interval", "must be at least 1s")
	}
	return nil
}

func (c CatalogConfig) validate() error {
	if c.URL != "" && len(c.URLs) > 0 {
		return fielderr.New("urls", "give url or urls, not both")
	}
	if c.URL == "" && len(c.URLs) == 0 {
		return fielderr.New("url", "is required (or urls, a list of mirrors)")
	}
	if c.URL != "" {
		if err := checkCatalogURL(c.URL); err != nil {
			return fielderr.New("url", "%v", err)
		}
	}
	if err := checkURLList("urls", c.URLs); err != nil {
		return err
	}
	if c.Root == "" {
		return fielderr.New("root", "is required (the pinned root.json printed by `swarmship catalog init`)")
	}
	switch c.Watch {
	case WatchAuto, WatchOff, "":
	default:
		return fielderr.New("watch", "%q: want auto or off", c.Watch)
	}
	return nil
}

func (s Subscription) withDefaults() Subscription {
	if s.Keep == 0 {
		s.Keep = 1
	}
	return s
}

func (s Subscription) validate() error {
	if err := release.ValidateName("name", s.Name); err != nil {
		return fielderr.New("name", "%v", err)
	}
	if s.Channel != "" && s.Version != "" {
		return fielderr.New("", "give a channel or a version, not both")
	}
	if s.Channel != "" {
		if err := release.ValidateName("channel", s.Channel); err != nil {
			return fielderr.New("channel", "%v", err)
		}
	}
	if s.Version != "" {
		if err := release.ValidateName("version", s.Version); err != nil {
			return fielderr.New("version", "%v", err)
		}
	}
	if s.Keep < 0 {
		return fielderr.New("keep", "must not be negative")
	}
	for i, w := range s.Windows {
		if err := w.Validate(); err != nil {
			return fielderr.New(fielderr.Index("windows", i), "%v", err)
		}
	}
	for i, w := range s.Activate {
		if err := w.Validate(); err != nil {
			return fielderr.New(fielderr.Index("activate", i), "%v", err)
		}
	}
	return nil
}

func (c SwarmConfig) withDefaults() SwarmConfig {
	if c.Locality == "" {
		c.Locality = "gateway"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 50
	}
	if c.Order == "" {
		c.Order = "verify"
	}
	if c.Relay == "" {
		c.Relay = RelayNever
	}
	if c.LSD == "" {
		c.LSD = LSDOn
		if c.Relay == RelayOrigin {
			c.LSD = LSDOff // LSD announces the address relay mode keeps private
		}
	}
	if c.DHT == "" {
		c.DHT = DHTOff
	}
	if c.UTP == "" {
		c.UTP = "off"
	}
	return c
}

func (c SwarmConfig) validate() error {
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return fielderr.New("listen_port", "%d is not a port", c.ListenPort)
	}
	switch c.Locality {
	case "gateway", "any", "region", "site":
	default:
		return fielderr.New("locality", "%q: want gateway, any, region or site", c.Locality)
	}
	if c.MaxConns < 1 {
		return fielderr.New("max_conns", "must be at least 1")
	}
	switch c.Order {
	case "verify", "rarest":
	default:
		return fielderr.New("order", "%q: want verify or rarest", c.Order)
	}
	switch c.LSD {
	case LSDOn, LSDOff:
	default:
		return fielderr.New("lsd", "%q: want on or off", c.LSD)
	}
	switch c.UTP {
	case "on", "off":
	default:
		return fielderr.New("utp", "%q: want on or off", c.UTP)
	}
	if c.UTP == "on" && c.Relay == RelayOrigin {
		return fielderr.New("utp", "on with relay: origin: a relay-mode agent dials no peer directly")
	}
	if c.LSDSecretFile != "" && c.LSD == LSDOff {
		return fielderr.New("lsd_secret_file", "is set but lsd is off")
	}
	if _, err := btclient.ParseDSCP(c.DSCP); err != nil {
		return fielderr.New("dscp", "%v", err)
	}
	if err := c.validateDHT(); err != nil {
		return err
	}
	return c.validateRelay()
}

func (c OffloadConfig) withDefaults() OffloadConfig {
	if c.StartupGrace == 0 {
		c.StartupGrace = 3 * time.Second
	}
	if c.OrphanTimeout == 0 {
		c.OrphanTimeout = 10 * time.Second
	}
	if c.Parallel == 0 {
		c.Parallel = 4
	}
	if c.OriginShare == 0 {
		c.OriginShare = 0.6
	}
	return c
}

func (c OffloadConfig) validate() error {
	if c.Parallel < 1 || c.Parallel > 64 {
		return fielderr.New("parallel", "must be between 1 and 64")
	}
	if c.StartupGrace < 0 {
		return fielderr.New("startup_grace", "must not be negative")
	}
	if c.OrphanTimeout <= 0 {
		return fielderr.New("orphan_timeout", "must be positive")
	}
	// Below 64 kbit/s a piece would wait minutes for its tokens: a typo
	// ("50kbit" for "50Mbit") rather than a WAN link.
	if c.SiteWANDown < 0 || (c.SiteWANDown > 0 && c.SiteWANDown < 8000) {
		return fielderr.New("site_wan_down", "%v: want 0 (unset) or at least 64kbit", c.SiteWANDown)
	}
	if !(c.OriginShare > 0 && c.OriginShare <= 1) {
		return fielderr.New("origin_share", "%v: want a fraction in (0, 1]", c.OriginShare)
	}
	return checkURLList("sources", c.Sources)
}

// checkURLList checks a list of catalog locations: each one valid, none
// twice (a mirror listed twice would be asked twice when it is down).
func checkURLList(field string, urls []string) error {
	seen := map[string]bool{}
	for i, u := range urls {
		at := fielderr.Index(field, i)
		if u == "" {
			return fielderr.New(at, "is empty")
		}
		if err := checkCatalogURL(u); err != nil {
			return fielderr.New(at, "%v", err)
		}
		if seen[u] {
			return fielderr.New(at, "%s is listed twice", u)
		}
		seen[u] = true
	}
	return nil
}

// checkAnnounceURL refuses what is not an http(s) announce URL.
func checkAnnounceURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) announce URL", raw)
	}
	return nil
}

func (c StatusConfig) withDefaults() StatusConfig {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7071"
	}
	return c
}

// validate checks the address's form; that it is a loopback address is
// checked when the API starts (sync turns the API off instead).
func (c StatusConfig) validate() error {
	if c.Addr != "off" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fielderr.New("addr", "%q: want host:port or off", c.Addr)
		}
	}
	for i, h := range c.Hosts {
		if strings.TrimSpace(h) == "" {
			return fielderr.New(fielderr.Index("hosts", i), "is empty")
		}
	}
	return nil
}

func (c HooksConfig) withDefaults() HooksConfig {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.HealthCheck.Timeout == 0 {
		c.HealthCheck.Timeout = c.Timeout
	}
	return c
}

func (c HooksConfig) validate() error {
	if c.Timeout < 0 {
		return fielderr.New("timeout", "must be positive")
	}
	if c.HealthCheck.Timeout < 0 {
		return fielderr.New("health_check.timeout", "must be positive")
	}
	return nil
}

func (c PowerConfig) withDefaults() PowerConfig {
	if c.SysfsRoot == "" {
		c.SysfsRoot = "/sys"
	}
	if c.NetworkManager == "" {
		c.NetworkManager = NetworkManagerAuto
	}
	return c
}

func (c PowerConfig) validate() error {
	if c.NetworkManager != "" && c.NetworkManager != NetworkManagerAuto && c.NetworkManager != NetworkManagerOff {
		return fielderr.New("network_manager", "network_manager %q: want %s or %s", c.NetworkManager, NetworkManagerAuto, NetworkManagerOff)
	}
	return c.PowerRules.Validate()
}

// validate checks the profiles and the schedule (which policy.CheckProfiles
// names relative to this section).
func (c RatesConfig) validate() error {
	if len(c.Profiles) == 0 && len(c.Schedule) == 0 && c.Default == "" {
		return nil
	}
	return policy.CheckProfiles(policy.Schedule{Rules: c.Schedule}, c.Profiles, c.Default)
}

// LoadConfig reads and validates an agent config file. Errors name the
// file, the line and the field.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig is LoadConfig on bytes; name is used in error messages.
// Unknown fields are refused.
func ParseConfig(name string, b []byte) (*Config, error) {
	var c Config
	if err := yamlconfig.Parse(name, b, &c, c.Finish); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkCatalogURL refuses catalog locations no store can open, so that
// only reachability problems are left for run time.
func checkCatalogURL(raw string) error {
	i := strings.Index(raw, ":")
	if i <= 1 || strings.ContainsAny(raw[:i], "/\\.") {
		return nil // a plain path
	}
	switch scheme := strings.ToLower(raw[:i]); scheme {
	case "file", "s3", "http", "https":
		if _, err := url.Parse(raw); err != nil {
			return err
		}
		return nil
	default:
		return fmt.Errorf("unknown scheme %q (want a directory, file://, s3:// or http(s)://)", scheme)
	}
}

// Finish applies defaults and validates a config built in code rather than
// read from a file.
func (c *Config) Finish() error {
	*c = c.withDefaults()
	return c.Validate()
}

// Location returns the site's time zone (validated by Validate).
func (c *Config) Location() *time.Location {
	if c.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// QuotaBytes is the cache quota in bytes, 0 for none.
func (c *Config) QuotaBytes() int64 { return int64(c.CacheQuota) }

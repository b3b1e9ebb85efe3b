package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/tracing"
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
}

// CatalogConfig says where the signed catalog is and which root to trust.
type CatalogConfig struct {
	URL  string `yaml:"url"`  // directory, s3://bucket/prefix or http(s)://mirror
	Root string `yaml:"root"` // pinned root.json
	S3   struct {
		Endpoint  string `yaml:"endpoint"`
		Region    string `yaml:"region"`
		AccessKey string `yaml:"access_key"`
		SecretKey string `yaml:"secret_key"`
	} `yaml:"s3"`
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
}

func (c *Config) setDefaults() {
	if c.RefreshInterval == 0 {
		c.RefreshInterval = time.Minute
	}
	if c.Swarm.Locality == "" {
		c.Swarm.Locality = "gateway"
	}
	if c.Swarm.MaxConns == 0 {
		c.Swarm.MaxConns = 50
	}
	if c.Offload.StartupGrace == 0 {
		c.Offload.StartupGrace = 3 * time.Second
	}
	if c.Offload.OrphanTimeout == 0 {
		c.Offload.OrphanTimeout = 10 * time.Second
	}
	if c.Offload.Parallel == 0 {
		c.Offload.Parallel = 4
	}
	if c.Status.Addr == "" {
		c.Status.Addr = "127.0.0.1:7071"
	}
	if c.AuditLog == "" && c.CacheDir != "" {
		c.AuditLog = filepath.Join(c.CacheDir, "state", "audit.jsonl")
	}
	if c.Power.SysfsRoot == "" {
		c.Power.SysfsRoot = "/sys"
	}
	if c.Mode == "" {
		c.Mode = policy.ModeOn
	}
	if c.Hooks.Timeout == 0 {
		c.Hooks.Timeout = 5 * time.Minute
	}
	c.Report.setDefaults()
	for i := range c.Subscriptions {
		if c.Subscriptions[i].Keep == 0 {
			c.Subscriptions[i].Keep = 1
		}
	}
}

// fieldError is a config error tied to a YAML field path like
// "subscriptions[1].name"; Load turns it into file:line.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func ferr(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// Validate checks the config after defaults are applied.
func (c *Config) Validate() error {
	if c.Catalog.URL == "" {
		return ferr("catalog.url", "is required")
	}
	if err := checkCatalogURL(c.Catalog.URL); err != nil {
		return ferr("catalog.url", "%v", err)
	}
	if c.Catalog.Root == "" {
		return ferr("catalog.root", "is required (the pinned root.json printed by `swarmship catalog init`)")
	}
	if c.CacheDir == "" {
		return ferr("cache_dir", "is required")
	}
	if c.Tracker != "" {
		u, err := url.Parse(c.Tracker)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return ferr("tracker", "%q is not an http(s) announce URL", c.Tracker)
		}
	}
	for _, f := range []struct{ name, v string }{{"site", c.Site}, {"region", c.Region}, {"tenant", c.Tenant}} {
		if f.v != "" {
			if err := release.ValidateName(f.name, f.v); err != nil {
				return ferr(f.name, "%v", err)
			}
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		return ferr("token", "give token or token_file, not both")
	}
	// A token keeps strangers off the tracker and the catalog, but the peer
	// port would still hand the payload to anyone who knows an infohash:
	// with tokens, peers must authenticate too (mutual TLS).
	if (c.Token != "" || c.TokenFile != "") && c.Mode.Peers() && !c.PeerTLS.Enabled() {
		field := "token"
		if c.TokenFile != "" {
			field = "token_file"
		}
		return ferr(field, "a token needs peer_tls mode %s: without it any client that knows an infohash downloads private releases from this agent's peer port (or use mode origin-only)", peertls.ModeRequired)
	}
	if len(c.Subscriptions) == 0 {
		return ferr("subscriptions", "lists no releases")
	}
	seen := map[string]bool{}
	for i, s := range c.Subscriptions {
		field := "subscriptions[" + strconv.Itoa(i) + "]"
		if err := release.ValidateName("name", s.Name); err != nil {
			return ferr(field+".name", "%v", err)
		}
		if seen[s.Name] {
			return ferr(field+".name", "%s is subscribed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Channel != "" && s.Version != "" {
			return ferr(field, "give a channel or a version, not both")
		}
		if s.Channel != "" {
			if err := release.ValidateName("channel", s.Channel); err != nil {
				return ferr(field+".channel", "%v", err)
			}
		}
		if s.Version != "" {
			if err := release.ValidateName("version", s.Version); err != nil {
				return ferr(field+".version", "%v", err)
			}
		}
		if s.Keep < 0 {
			return ferr(field+".keep", "must not be negative")
		}
	}
	if c.Swarm.ListenPort < 0 || c.Swarm.ListenPort > 65535 {
		return ferr("swarm.listen_port", "%d is not a port", c.Swarm.ListenPort)
	}
	switch c.Swarm.Locality {
	case "gateway", "any", "region", "site":
	default:
		return ferr("swarm.locality", "%q: want gateway, any, region or site", c.Swarm.Locality)
	}
	if err := c.PeerTLS.Validate(); err != nil {
		return ferr("peer_tls", "%v", err)
	}
	if c.Swarm.MaxConns < 1 {
		return ferr("swarm.max_conns", "must be at least 1")
	}
	if c.Offload.Parallel < 1 || c.Offload.Parallel > 64 {
		return ferr("offload.parallel", "must be between 1 and 64")
	}
	if c.Offload.StartupGrace < 0 || c.Offload.OrphanTimeout <= 0 {
		return ferr("offload", "startup_grace must be >= 0 and orphan_timeout > 0")
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return ferr("timezone", "%v", err)
		}
	}
	sched := policy.Schedule{Rules: c.Rates.Schedule}
	if err := sched.Validate(); err != nil {
		return ferr("rates.schedule", "%v", err)
	}
	if len(c.Rates.Profiles) > 0 || len(c.Rates.Schedule) > 0 || c.Rates.Default != "" {
		if err := policy.CheckProfiles(sched, c.Rates.Profiles, c.Rates.Default); err != nil {
			return ferr("rates", "%v", err)
		}
	}
	if c.CacheQuota < 0 {
		return ferr("cache_quota", "must not be negative")
	}
	if err := c.Tracing.Validate(); err != nil {
		return ferr("tracing.otlp_endpoint", "%v", err)
	}
	if err := c.Power.Validate(); err != nil {
		return ferr("power", "%v", err)
	}
	if c.Mode == policy.ModeOffline {
		if u := strings.ToLower(c.Catalog.URL); strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "https:") || strings.HasPrefix(u, "s3:") {
			return ferr("catalog.url", "mode offline reads a bundle directory (swarmship bundle import), not %s", c.Catalog.URL)
		}
	}
	if c.RefreshInterval < time.Second {
		return ferr("refresh_interval", "must be at least 1s")
	}
	if err := c.Report.validate(); err != nil {
		return err
	}
	return nil
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
func ParseConfig(name string, b []byte) (*Config, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s: config is larger than 1 MiB", name)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, os.ErrNotExist) || err.Error() == "EOF" {
			return nil, fmt.Errorf("%s: config is empty", name)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// "line 7: field x not found" → "agent.yaml:7: field x not found"
			var msgs []string
			for _, e := range te.Errors {
				if rest, ok := strings.CutPrefix(e, "line "); ok {
					if num, msg, ok := strings.Cut(rest, ": "); ok {
						msgs = append(msgs, name+":"+num+": "+msg)
						continue
					}
				}
				msgs = append(msgs, name+": "+e)
			}
			return nil, errors.New(strings.Join(msgs, "; "))
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			if line := lineOf(&root, fe.field); line > 0 {
				return nil, fmt.Errorf("%s:%d: %s: %s", name, line, fe.field, fe.msg)
			}
			return nil, fmt.Errorf("%s: %s: %s", name, fe.field, fe.msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

// lineOf finds the line of a field path such as "subscriptions[1].name" in
// a YAML document, or of its nearest existing parent; 0 if unknown.
func lineOf(doc *yaml.Node, field string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
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
	c.setDefaults()
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

// Package report is what an agent tells the origin about itself: the body
// of POST /api/v1/report. The agent builds it from its status; the origin
// decodes it strictly, validates it and aggregates reports into the
// rollout view (GET /api/v1/rollout) and the dashboard. It also holds the
// swarm view (SwarmView), what the origin's tracker tells agents about a
// swarm, so that agents import no origin package for either wire format.
package report

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/swarmship/swarmship/internal/release"
)

// Limits of one report. The origin refuses larger ones; the agent trims
// error strings and drops releases beyond MaxReleases before sending.
const (
	Path        = "/api/v1/report"
	MaxBody     = 1 << 20
	Version     = 1
	MaxReleases = 256
	MaxSubs     = 256
	MaxText     = 1024 // errors, reasons, URLs
	MaxIDLen    = 64
	MaxNameLen  = 128 // the agent's display name
	// MaxPolicyDocs bounds the fleet policy documents (and the value
	// sources) one report names.
	MaxPolicyDocs = 32
	MaxRate       = 1e12 // bytes/s a download may claim (NaN and Inf refused)
)

// Report is one agent's state at one moment.
type Report struct {
	V       int    `json:"v"`        // Version
	AgentID string `json:"agent_id"` // stable across restarts (kept in the cache dir)
	PeerID  string `json:"peer_id,omitempty"`
	Name    string `json:"name,omitempty"` // host name or configured name, for people
	Site    string `json:"site,omitempty"`
	Region  string `json:"region,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	// IntervalSeconds is the agent's report interval: the origin calls an
	// agent missing, or its download stalled, after a few of them.
	IntervalSeconds float64        `json:"interval_seconds"`
	Sent            time.Time      `json:"sent"` // the agent's clock; the origin uses its own
	Catalog         Catalog        `json:"catalog"`
	Policy          Policy         `json:"policy"`
	Subscriptions   []Subscription `json:"subscriptions"`
	Releases        []Release      `json:"releases"`
	// AgentVersion is the agent binary's version (issue 18); SelfUpdate
	// the outcome of its latest self-update when it was rolled back.
	// Both omitted when empty, so reports still decode at older origins
	// unless there is something to say (upgrade origins first).
	AgentVersion string `json:"agent_version,omitempty"`
	SelfUpdate   string `json:"self_update,omitempty"`
	// Ledger is the agent's contribution accounting (ledger.go); omitted
	// by agents older than it, and refused by origins older than it:
	// upgrade origins first.
	Ledger *Ledger `json:"ledger,omitempty"`
	// Screens are the signage screens the agent serves (issue 19), for
	// the origin's "screens at risk". Omitted when there are none, so an
	// agent without signage still reports to older origins.
	Screens []Screen `json:"screens,omitempty"`
}

// MaxScreens bounds the screens of one report (policy.MaxScreens).
const MaxScreens = 256

// Screen is one signage screen: what it plays and, when the schedule
// wants content that is not verified, what it misses since when.
type Screen struct {
	Screen  string    `json:"screen"`
	Playing string    `json:"playing,omitempty"` // name@version/playlist
	AtRisk  bool      `json:"at_risk,omitempty"`
	Wanted  string    `json:"wanted,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since,omitzero"` // the missed air time
}

// Catalog is the health of the agent's catalog feed.
type Catalog struct {
	URL         string    `json:"url,omitempty"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// Policy is the branch policy in force: P2P mode, rate profile, limits.
type Policy struct {
	Mode          string `json:"mode,omitempty"`
	Profile       string `json:"profile,omitempty"`
	DownLimit     string `json:"down_limit,omitempty"`
	UpLimit       string `json:"up_limit,omitempty"`
	UploadAllowed bool   `json:"upload_allowed"`
	Throttle      string `json:"throttle,omitempty"` // why transfers wait (metered, battery)
	CachedBytes   int64  `json:"cached_bytes"`
	QuotaBytes    int64  `json:"quota_bytes,omitempty"`
	// PolicyDocs are the fleet policy documents in force; Sources says
	// where each value came from ("local" or "policy:NAME"); PolicyError
	// is why a document was refused or not read.
	PolicyDocs  []string          `json:"policy_docs,omitempty"`
	Sources     map[string]string `json:"sources,omitempty"`
	PolicyError string            `json:"policy_error,omitempty"`
}

// Subscription is what one subscription resolves to.
type Subscription struct {
	Subscription string `json:"subscription"`
	Name         string `json:"name"`
	Target       string `json:"target,omitempty"` // version the catalog points at
	Active       string `json:"active,omitempty"` // version active now
	Ready        bool   `json:"ready"`
	Reason       string `json:"reason,omitempty"`
}

// Release is one release in the agent's cache.
type Release struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	InfoHash   string `json:"infohash,omitempty"`
	State      string `json:"state"` // queued, downloading, verified, active, failed
	Size       int64  `json:"size"`
	Completed  int64  `json:"completed"`
	Downloaded Bytes  `json:"downloaded"`
	Uploaded   int64  `json:"uploaded"`
	// Reused is payload bytes the agent took from releases it already
	// held (issue 17), at most Size; absent from older agents. Omitted
	// when 0, so an agent that reused nothing still reports to an origin
	// older than the field; one that did needs an upgraded origin (strict
	// decoding): upgrade origins first.
	Reused    int64  `json:"reused,omitempty"`
	Peers     int    `json:"peers"`
	LastError string `json:"last_error,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// DeliverBy, Rate (bytes/s, smoothed) and AtRisk describe a download
	// with a deliver-by time (issue 18): the origin lists sites that will
	// miss it. Omitted when there is none, like Reused: upgrade origins
	// before agents that send them.
	DeliverBy time.Time `json:"deliver_by,omitzero"`
	Rate      float64   `json:"rate,omitempty"`
	AtRisk    bool      `json:"at_risk,omitempty"`
}

// Key is name@version.
func (r Release) Key() string { return release.Format(r.Name, r.Version) }

// Bytes counts downloaded payload bytes by source.
type Bytes struct {
	Peer    int64 `json:"peer"`
	Origin  int64 `json:"origin"`
	WebSeed int64 `json:"webseed"`
}

// Add returns b+o.
func (b Bytes) Add(o Bytes) Bytes {
	return Bytes{Peer: b.Peer + o.Peer, Origin: b.Origin + o.Origin, WebSeed: b.WebSeed + o.WebSeed}
}

// States a release can be in.
var States = []string{"queued", "downloading", "verified", "active", "failed"}

func knownState(s string) bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// Decode reads one report strictly: unknown fields, trailing data and
// bodies over MaxBody are errors. It validates the result.
func Decode(r io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("report is larger than %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("report: trailing data after the JSON object")
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Validate checks identifiers, sizes and counters.
func (r *Report) Validate() error {
	if r.V != Version {
		return fmt.Errorf("report version %d, want %d", r.V, Version)
	}
	if err := validID("agent_id", r.AgentID); err != nil {
		return err
	}
	if r.PeerID != "" {
		if b, err := hex.DecodeString(r.PeerID); err != nil || len(b) != 20 {
			return errors.New("peer_id is not 40 hex digits")
		}
	}
	if err := text("name", r.Name, MaxNameLen); err != nil {
		return err
	}
	for _, f := range []struct{ k, v string }{{"site", r.Site}, {"region", r.Region}, {"tenant", r.Tenant}} {
		if f.v != "" {
			if err := release.ValidateName(f.k, f.v); err != nil {
				return err
			}
		}
	}
	if !(r.IntervalSeconds > 0 && r.IntervalSeconds <= 86400) {
		return fmt.Errorf("interval_seconds %v is out of range (0, 86400]", r.IntervalSeconds)
	}
	if err := text("catalog.url", r.Catalog.URL, MaxText); err != nil {
		return err
	}
	if err := text("catalog.error", r.Catalog.Error, MaxText); err != nil {
		return err
	}
	if err := text("agent_version", r.AgentVersion, MaxNameLen); err != nil {
		return err
	}
	if err := text("self_update", r.SelfUpdate, MaxText); err != nil {
		return err
	}
	if r.Ledger != nil {
		if err := r.Ledger.validate(); err != nil {
			return err
		}
	}
	p := r.Policy
	for _, f := range []struct{ k, v string }{{"policy.mode", p.Mode}, {"policy.profile", p.Profile}, {"policy.down_limit", p.DownLimit}, {"policy.up_limit", p.UpLimit}, {"policy.throttle", p.Throttle}} {
		if err := text(f.k, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	if p.CachedBytes < 0 || p.QuotaBytes < 0 {
		return errors.New("policy: negative cache figures")
	}
	if len(p.PolicyDocs) > MaxPolicyDocs || len(p.Sources) > MaxPolicyDocs {
		return fmt.Errorf("policy: more than %d documents or sources", MaxPolicyDocs)
	}
	for _, d := range p.PolicyDocs {
		if err := text("policy.policy_docs", d, MaxNameLen); err != nil {
			return err
		}
	}
	for k, v := range p.Sources {
		if err := text("policy.sources", k, MaxNameLen); err != nil {
			return err
		}
		if err := text("policy.sources", v, MaxNameLen); err != nil {
			return err
		}
	}
	if err := text("policy.policy_error", p.PolicyError, MaxText); err != nil {
		return err
	}
	if len(r.Subscriptions) > MaxSubs {
		return fmt.Errorf("%d subscriptions, at most %d", len(r.Subscriptions), MaxSubs)
	}
	for i, s := range r.Subscriptions {
		field := fmt.Sprintf("subscriptions[%d]", i)
		if err := release.ValidateName(field+".name", s.Name); err != nil {
			return err
		}
		for _, v := range []struct{ k, v string }{{".target", s.Target}, {".active", s.Active}} {
			if v.v != "" {
				if err := release.ValidateName(field+v.k, v.v); err != nil {
					return err
				}
			}
		}
		if err := text(field+".subscription", s.Subscription, MaxText); err != nil {
			return err
		}
		if err := text(field+".reason", s.Reason, MaxText); err != nil {
			return err
		}
	}
	if len(r.Screens) > MaxScreens {
		return fmt.Errorf("%d screens, at most %d", len(r.Screens), MaxScreens)
	}
	for i, sc := range r.Screens {
		field := fmt.Sprintf("screens[%d]", i)
		if err := release.ValidateName(field+".screen", sc.Screen); err != nil {
			return err
		}
		for _, f := range []struct{ k, v string }{{".playing", sc.Playing}, {".wanted", sc.Wanted}, {".reason", sc.Reason}} {
			if err := text(field+f.k, f.v, MaxText); err != nil {
				return err
			}
		}
	}
	if len(r.Releases) > MaxReleases {
		return fmt.Errorf("%d releases, at most %d", len(r.Releases), MaxReleases)
	}
	seen := make(map[string]bool, len(r.Releases))
	for i, rel := range r.Releases {
		field := fmt.Sprintf("releases[%d]", i)
		if err := release.ValidateName(field+".name", rel.Name); err != nil {
			return err
		}
		if err := release.ValidateName(field+".version", rel.Version); err != nil {
			return err
		}
		if seen[rel.Key()] {
			return fmt.Errorf("%s: %s is listed twice", field, rel.Key())
		}
		seen[rel.Key()] = true
		if rel.InfoHash != "" {
			if b, err := hex.DecodeString(rel.InfoHash); err != nil || len(b) != 20 {
				return fmt.Errorf("%s.infohash is not 40 hex digits", field)
			}
		}
		if !knownState(rel.State) {
			return fmt.Errorf("%s.state %q is not one of %v", field, rel.State, States)
		}
		d := rel.Downloaded
		if rel.Size < 0 || rel.Completed < 0 || rel.Completed > rel.Size || rel.Uploaded < 0 || rel.Peers < 0 ||
			rel.Reused < 0 || rel.Reused > rel.Size ||
			d.Peer < 0 || d.Origin < 0 || d.WebSeed < 0 {
			return fmt.Errorf("%s: negative counter, or completed or reused > size", field)
		}
		if !(rel.Rate >= 0 && rel.Rate <= MaxRate) {
			return fmt.Errorf("%s.rate %v is not in [0, %v]", field, rel.Rate, float64(MaxRate))
		}
		if err := text(field+".last_error", rel.LastError, MaxText); err != nil {
			return err
		}
		if err := text(field+".reason", rel.Reason, MaxText); err != nil {
			return err
		}
	}
	return nil
}

func validID(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%s is longer than %d bytes", field, MaxIDLen)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%s contains %q: use letters, digits, '-', '_' or '.'", field, c)
		}
	}
	return nil
}

func text(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not UTF-8", field)
	}
	for _, c := range s {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("%s contains a control character", field)
		}
	}
	return nil
}

// Trim cuts s to at most max bytes on a rune boundary, replacing control
// characters, so that agent-side text always passes Validate.
func Trim(s string, max int) string {
	var b []byte
	for _, c := range s {
		if c == utf8.RuneError {
			c = '?'
		}
		if c < 0x20 && c != '\t' || c == 0x7f {
			c = ' '
		}
		if len(b)+utf8.RuneLen(c) > max {
			break
		}
		b = utf8.AppendRune(b, c)
	}
	return string(b)
}

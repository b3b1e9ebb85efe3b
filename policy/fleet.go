package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/yamlconfig"
)

// Fleet policy: documents signed into the catalog that set an agent's
// rates, P2P mode, cache quota and download windows for the sites,
// regions or labels they are assigned to. Each agent merges the documents
// that match it with its own agent.yaml (MergeFleet):
//
//   - A key set by no matching document is the local value.
//   - A key set centrally holds, except that the local value wins where it
//     is stricter: a lower rate (per direction, at every instant), a more
//     restrictive mode (on < download-only < origin-only < offline), a
//     smaller non-zero quota. Download windows apply both: a download must
//     be inside the subscription's windows and the central ones.
//   - A key the document lists in allow_local is the local value when the
//     local file sets it at all (stricter or not); else the central one.
//   - Two matching documents that set the same key conflict: the later
//     one in name order is refused whole (SelectFleetDocs).

// Limits on fleet documents.
const (
	// MaxFleetDocSize bounds one document; a larger target is not read.
	MaxFleetDocSize = 64 << 10
	// MaxFleetDocs bounds how many documents an agent reads per refresh.
	MaxFleetDocs = 256
	// maxFleetSelectors bounds each assign list.
	maxFleetSelectors = 1000
)

// Fleet policy keys, as named in allow_local and in status origins.
const (
	FleetRates      = "rates"
	FleetMode       = "mode"
	FleetCacheQuota = "cache_quota"
	FleetWindows    = "windows"
)

var fleetKeys = []string{FleetRates, FleetMode, FleetCacheQuota, FleetWindows}

// OriginLocal names the agent's own file as where a value came from; a
// value from a document is "policy:NAME".
const OriginLocal = "local"

// FleetRateSet is a rates section, the same shape as agent.yaml's.
type FleetRateSet struct {
	Profiles []RateProfile `yaml:"profiles"`
	Schedule []Rule        `yaml:"schedule"`
	Default  string        `yaml:"default"`
}

// IsSet reports whether the section sets anything.
func (r FleetRateSet) IsSet() bool {
	return len(r.Profiles) > 0 || len(r.Schedule) > 0 || r.Default != ""
}

// At is the profile in force at t in loc and the schedule's next edge
// after t (zero: none).
func (r FleetRateSet) At(loc *time.Location, t time.Time) (RateProfile, time.Time) {
	s := Schedule{Location: loc, Rules: r.Schedule}
	p, err := ProfileAt(s, r.Profiles, r.Default, t)
	if err != nil || !r.IsSet() {
		p = UnlimitedProfile
	}
	if len(r.Schedule) == 0 {
		return p, time.Time{}
	}
	return p, s.NextChange(t)
}

// FleetAssign says which agents a document is for: any agent whose site,
// region or one of whose labels is listed.
type FleetAssign struct {
	Sites   []string `yaml:"sites" json:"sites,omitempty"`
	Regions []string `yaml:"regions" json:"regions,omitempty"`
	Labels  []string `yaml:"labels" json:"labels,omitempty"`
}

// FleetIdentity is what an agent is matched on.
type FleetIdentity struct {
	Site, Region string
	Labels       []string
}

// FleetDoc is one policy document.
type FleetDoc struct {
	Name       string        `yaml:"name"`
	Assign     FleetAssign   `yaml:"assign"`
	Rates      FleetRateSet  `yaml:"rates"`
	Mode       Mode          `yaml:"mode"`
	CacheQuota bytesize.Size `yaml:"cache_quota"`
	Windows    []Window      `yaml:"windows"`
	AllowLocal []string      `yaml:"allow_local"`
}

// ParseFleetDoc decodes a document strictly (unknown fields refused) and
// validates it; errors name the line and field.
func ParseFleetDoc(file string, b []byte) (*FleetDoc, error) {
	if len(b) > MaxFleetDocSize {
		return nil, fmt.Errorf("%s: policy document is larger than %d bytes", file, MaxFleetDocSize)
	}
	var d FleetDoc
	if err := yamlconfig.Parse(file, b, &d, d.Validate); err != nil {
		return nil, err
	}
	return &d, nil
}

// Keys lists the keys the document sets, in a fixed order.
func (d *FleetDoc) Keys() []string {
	var out []string
	for _, k := range fleetKeys {
		if d.sets(k) {
			out = append(out, k)
		}
	}
	return out
}

func (d *FleetDoc) sets(key string) bool {
	switch key {
	case FleetRates:
		return d.Rates.IsSet()
	case FleetMode:
		return d.Mode != ""
	case FleetCacheQuota:
		return d.CacheQuota > 0
	case FleetWindows:
		return len(d.Windows) > 0
	}
	return false
}

// Validate checks the document as agent.yaml's sections are checked.
func (d *FleetDoc) Validate() error {
	if err := release.ValidateName("policy name", d.Name); err != nil {
		return fielderr.New("name", "%v", err)
	}
	a := d.Assign
	if len(a.Sites)+len(a.Regions)+len(a.Labels) == 0 {
		return fielderr.New("assign", "assigned to nobody: list sites, regions or labels")
	}
	for field, list := range map[string][]string{"assign.sites": a.Sites, "assign.regions": a.Regions, "assign.labels": a.Labels} {
		if len(list) > maxFleetSelectors {
			return fielderr.New(field, "more than %d entries", maxFleetSelectors)
		}
		for i, s := range list {
			if s == "" {
				return fielderr.New(fielderr.Index(field, i), "empty")
			}
		}
	}
	if d.Rates.IsSet() {
		if err := CheckProfiles(Schedule{Rules: d.Rates.Schedule}, d.Rates.Profiles, d.Rates.Default); err != nil {
			return fielderr.In("rates", err)
		}
	}
	if d.CacheQuota < 0 {
		return fielderr.New("cache_quota", "must not be negative")
	}
	for i, w := range d.Windows {
		if err := w.Validate(); err != nil {
			return fielderr.New(fielderr.Index("windows", i), "%v", err)
		}
	}
	for i, k := range d.AllowLocal {
		if !slices.Contains(fleetKeys, k) {
			return fielderr.New(fielderr.Index("allow_local", i), "unknown key %q: want one of %s", k, strings.Join(fleetKeys, ", "))
		}
	}
	if len(d.Keys()) == 0 {
		return fielderr.New("", "sets nothing: give rates, mode, cache_quota or windows")
	}
	return nil
}

// Matches reports whether the document is assigned to id.
func (d *FleetDoc) Matches(id FleetIdentity) bool {
	a := d.Assign
	if id.Site != "" && slices.Contains(a.Sites, id.Site) {
		return true
	}
	if id.Region != "" && slices.Contains(a.Regions, id.Region) {
		return true
	}
	for _, l := range id.Labels {
		if slices.Contains(a.Labels, l) {
			return true
		}
	}
	return false
}

// FleetCandidate is a document as fetched: parsed, or why not.
type FleetCandidate struct {
	Name string
	Doc  *FleetDoc
	Err  error
	Raw  []byte // the signed bytes of a document that parsed, to keep as last good
}

// FleetRefusal is a document refused, and whether an earlier good
// version of it stays in force instead.
type FleetRefusal struct {
	Name     string `json:"name"`
	Error    string `json:"error"`
	KeptLast bool   `json:"kept_last_good"`
}

// SelectFleetDocs picks the documents that apply to id from those fetched
// and the last good ones (by name). A document that does not parse or
// validate, or that sets a key an earlier one (in name order) already
// set, is refused whole; its last good version stays in force if there
// is one and it neither conflicts nor stopped matching. A document no
// longer in the catalog is dropped (removed on purpose). The result is
// in name order.
func SelectFleetDocs(id FleetIdentity, fresh []FleetCandidate, lastGood []*FleetDoc) ([]*FleetDoc, []FleetRefusal) {
	last := map[string]*FleetDoc{}
	for _, d := range lastGood {
		last[d.Name] = d
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Name < fresh[j].Name })
	owner := map[string]string{}
	var out []*FleetDoc
	var refused []FleetRefusal
	free := func(d *FleetDoc) error {
		for _, k := range d.Keys() {
			if o, ok := owner[k]; ok {
				return fmt.Errorf("sets %s, which policy %q already sets for this agent", k, o)
			}
		}
		return nil
	}
	take := func(d *FleetDoc) {
		for _, k := range d.Keys() {
			owner[k] = d.Name
		}
		out = append(out, d)
	}
	for _, c := range fresh {
		err := c.Err
		if err == nil && c.Doc.Name != c.Name {
			err = fmt.Errorf("document says its name is %q", c.Doc.Name)
		}
		if err == nil {
			if !c.Doc.Matches(id) {
				continue
			}
			if err = free(c.Doc); err == nil {
				take(c.Doc)
				continue
			}
		}
		r := FleetRefusal{Name: c.Name, Error: err.Error()}
		if old := last[c.Name]; old != nil && old.Matches(id) && free(old) == nil {
			take(old)
			r.KeptLast = true
		}
		refused = append(refused, r)
	}
	return out, refused
}

// FleetLocal is what the agent's own file sets. Zero values mean unset:
// no rates, mode "" (on), quota 0 (none), no windows.
type FleetLocal struct {
	Rates FleetRateSet
	Mode  Mode
	Quota int64
}

// FleetEffective is the merged policy. Rates depend on the time
// (ProfileAt); windows on the subscription (WindowOpen).
type FleetEffective struct {
	local, central FleetRateSet
	ratesFrom      string // document setting rates, "" none
	ratesLocal     bool   // allow_local: the local rates replace the central ones
	Mode           Mode
	Quota          int64
	Windows        []Window // central download windows; none: no central limit
	// WindowsLocal: subscriptions with their own windows use only those.
	WindowsLocal bool
	// Origins says where each value came from: OriginLocal or
	// "policy:NAME", by key (mode, cache_quota, windows, and per rate
	// direction down, up, wan_down, wan_up once ProfileAt ran).
	Origins map[string]string
	Docs    []string
}

// modeRank orders modes from least to most restrictive.
func modeRank(m Mode) int {
	switch m {
	case "", ModeOn:
		return 0
	case ModeDownloadOnly:
		return 1
	case ModeOriginOnly:
		return 2
	}
	return 3
}

// MergeFleet merges docs (from SelectFleetDocs: no two set one key) with
// the local settings by the rules at the top of this file.
func MergeFleet(local FleetLocal, docs []*FleetDoc) FleetEffective {
	e := FleetEffective{local: local.Rates, Mode: local.Mode, Quota: local.Quota, Origins: map[string]string{}}
	if e.Mode == "" {
		e.Mode = ModeOn
	}
	for _, k := range []string{FleetMode, FleetCacheQuota} {
		e.Origins[k] = OriginLocal
	}
	for _, d := range docs {
		e.Docs = append(e.Docs, d.Name)
		from := "policy:" + d.Name
		allow := func(k string) bool { return slices.Contains(d.AllowLocal, k) }
		if d.Rates.IsSet() {
			e.central, e.ratesFrom = d.Rates, from
			e.ratesLocal = allow(FleetRates) && local.Rates.IsSet()
		}
		if d.Mode != "" {
			localSet := local.Mode != "" && local.Mode != ModeOn
			if !(allow(FleetMode) && localSet) && modeRank(d.Mode) >= modeRank(e.Mode) {
				e.Mode, e.Origins[FleetMode] = d.Mode, from
			}
		}
		if d.CacheQuota > 0 {
			q := int64(d.CacheQuota)
			if !(local.Quota > 0 && (allow(FleetCacheQuota) || local.Quota < q)) {
				e.Quota, e.Origins[FleetCacheQuota] = q, from
			}
		}
		if len(d.Windows) > 0 {
			e.Windows, e.WindowsLocal = d.Windows, allow(FleetWindows)
			e.Origins[FleetWindows] = from
		}
	}
	return e
}

// ProfileAt is the rate profile in force at t: per direction the lower
// of the central and the local limit (0 = unlimited), or the local
// profile alone where allow_local permits. It also returns where each
// direction's limit came from and the next instant either schedule
// changes (zero: never).
func (e FleetEffective) ProfileAt(loc *time.Location, t time.Time) (RateProfile, map[string]string, time.Time) {
	lp, ln := e.local.At(loc, t)
	origins := map[string]string{}
	dirs := []string{"down", "up", "wan_down", "wan_up"}
	if e.ratesFrom == "" || e.ratesLocal {
		for _, k := range dirs {
			origins[k] = OriginLocal
		}
		return lp, origins, ln
	}
	cp, cn := e.central.At(loc, t)
	out := RateProfile{Name: cp.Name}
	if e.local.IsSet() {
		out.Name = cp.Name + "+" + lp.Name
	}
	pick := func(k string, c, l Rate) Rate {
		if l != Unlimited && (c == Unlimited || l < c) {
			origins[k] = OriginLocal
			return l
		}
		origins[k] = e.ratesFrom
		return c
	}
	out.Down = pick("down", cp.Down, lp.Down)
	out.Up = pick("up", cp.Up, lp.Up)
	out.WANDown = pick("wan_down", cp.WANDown, lp.WANDown)
	out.WANUp = pick("wan_up", cp.WANUp, lp.WANUp)
	next := cn
	if next.IsZero() || (!ln.IsZero() && ln.Before(next)) {
		next = ln
	}
	return out, origins, next
}

// WindowOpen says whether the central download windows let a subscription
// with windows subWindows download at t; the subscription's own windows
// are checked by MayDownload as before.
func (e FleetEffective) WindowOpen(subWindows []Window, loc *time.Location, t time.Time) (bool, string) {
	if len(e.Windows) == 0 || (e.WindowsLocal && len(subWindows) > 0) {
		return true, ""
	}
	for _, w := range e.Windows {
		if w.Contains(t, loc) {
			return true, ""
		}
	}
	names := make([]string, len(e.Windows))
	for i, w := range e.Windows {
		names[i] = w.String()
	}
	return false, "outside the download windows of " + e.Origins[FleetWindows] + " (" + strings.Join(names, ", ") + ")"
}

// WindowsNextEdge is the next instant after t at which the central
// windows open or close (zero: none).
func (e FleetEffective) WindowsNextEdge(loc *time.Location, t time.Time) time.Time {
	if len(e.Windows) == 0 {
		return time.Time{}
	}
	rules := make([]Rule, len(e.Windows))
	for i, w := range e.Windows {
		rules[i] = Rule{Window: w, Name: "open"}
	}
	return Schedule{Location: loc, Rules: rules}.NextChange(t)
}

package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/policy"
)

// maxLabels bounds the labels of one agent (config labels).
const maxLabels = 64

// FleetPolicyStatus is the fleet policy part of the status: the documents
// in force, where each value came from (policy.OriginLocal or
// "policy:NAME"), and documents refused.
type FleetPolicyStatus struct {
	Documents []string              `json:"documents,omitempty"`
	Sources   map[string]string     `json:"sources"`
	Windows   []string              `json:"windows,omitempty"`
	Refused   []policy.FleetRefusal `json:"refused,omitempty"`
	Error     string                `json:"error,omitempty"`
	// Restart says what of the policy waits for a restart: peer
	// connections are set when the torrent client starts.
	Restart string `json:"restart,omitempty"`
}

// fleetState is the fleet policy in force (under Agent.mu).
type fleetState struct {
	eff     policy.FleetEffective
	ready   bool
	refused []policy.FleetRefusal
	err     string
	// docs and raw are the documents in force and their signed bytes,
	// persisted as the last good ones.
	docs []*policy.FleetDoc
	raw  map[string][]byte
	// seen caches parsed documents by signed digest so that an unchanged
	// document is not fetched again on every refresh.
	seen map[string]policy.FleetCandidate
}

// fleetFile is where the last good documents survive restarts.
func (a *Agent) fleetFile() string {
	return filepath.Join(a.cfg.CacheDir, "state", "fleetpolicy.json")
}

func (a *Agent) fleetIdentity() policy.FleetIdentity {
	return policy.FleetIdentity{Site: a.cfg.Site, Region: a.cfg.Region, Labels: a.cfg.Labels}
}

func (a *Agent) fleetLocal() policy.FleetLocal {
	c := a.cfg
	return policy.FleetLocal{
		Rates: policy.FleetRateSet{Profiles: c.Rates.Profiles, Schedule: c.Rates.Schedule, Default: c.Rates.Default},
		Mode:  cmp.Or(a.localMode, c.Mode), Quota: c.QuotaBytes(),
	}
}

// startWithFleetMode makes the agent start in the mode of the fleet
// policy in force (from the last run), which decides peer connections,
// discovery and the relay for this run: a.cfg becomes a copy with that
// mode. The local mode stays in a.localMode for merging.
func (a *Agent) startWithFleetMode() *Config {
	if m := a.fleetEffective().Mode; m != a.cfg.Mode {
		c := *a.cfg
		c.Mode = m
		a.cfg = &c
		a.log.Info("starting in the fleet policy's mode", "mode", string(m), "local_mode", string(a.localMode))
	}
	return a.cfg
}

// loadFleet puts the last good documents from an earlier run in force,
// so that an agent that cannot reach the catalog keeps its policy.
func (a *Agent) loadFleet() {
	st := fleetState{raw: map[string][]byte{}, seen: map[string]policy.FleetCandidate{}}
	var saved map[string]string
	b, err := os.ReadFile(a.fleetFile())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		st.err = "read last good fleet policy: " + err.Error()
	case json.Unmarshal(b, &saved) != nil:
		st.err = "last good fleet policy file is damaged; ignored"
	}
	var cands []policy.FleetCandidate
	for name, doc := range saved {
		d, err := policy.ParseFleetDoc(catalog.PolicyKey(name), []byte(doc))
		cands = append(cands, policy.FleetCandidate{Name: name, Doc: d, Err: err})
		st.raw[name] = []byte(doc)
	}
	st.docs, st.refused = policy.SelectFleetDocs(a.fleetIdentity(), cands, nil)
	st.eff = policy.MergeFleet(a.fleetLocal(), st.docs)
	st.ready = true
	if st.err != "" {
		a.log.Warn("fleet policy", "err", st.err)
	}
	a.mu.Lock()
	a.fleet = st
	a.mu.Unlock()
}

// fleetEffective is the merged policy in force.
func (a *Agent) fleetEffective() policy.FleetEffective {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.fleet.ready {
		return policy.MergeFleet(a.fleetLocal(), nil)
	}
	return a.fleet.eff
}

// refreshFleet reads the policy documents of the freshly refreshed
// catalog and puts those assigned to this agent in force. A document that
// does not validate or conflicts is refused whole and its last good
// version stays; a catalog that cannot be read leaves everything as is.
// The new limits apply at the next applyPolicy (the next pass).
func (a *Agent) refreshFleet(ctx context.Context) {
	cands, raw, err := a.fetchFleet(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &a.fleet
	if err != nil {
		if st.err != err.Error() {
			a.log.Warn("fleet policy not read; the policy in force stays", "err", err)
		}
		st.err = err.Error()
		return
	}
	docs, refused := policy.SelectFleetDocs(a.fleetIdentity(), cands, st.docs)
	keep := map[string][]byte{}
	for _, d := range docs {
		if b, ok := raw[d.Name]; ok && !refusedName(refused, d.Name) {
			keep[d.Name] = b
		} else {
			keep[d.Name] = st.raw[d.Name]
		}
	}
	changed := !sameRaw(keep, st.raw)
	if refusalText(refused) != refusalText(st.refused) {
		for _, r := range refused {
			a.log.Error("fleet policy document refused", "policy", r.Name, "err", r.Error, "kept_last_good", r.KeptLast)
		}
	}
	st.docs, st.refused, st.raw, st.err = docs, refused, keep, ""
	st.eff = policy.MergeFleet(a.fleetLocal(), docs)
	if !changed {
		return
	}
	names := make([]string, len(docs))
	for i, d := range docs {
		names[i] = d.Name
	}
	a.log.Info("fleet policy changed", "documents", strings.Join(names, ","))
	if err := a.saveFleetLocked(); err != nil {
		st.err = "persist last good fleet policy: " + err.Error()
		a.log.Warn("fleet policy", "err", st.err)
	}
}

// fetchFleet fetches the catalog's policy documents (reusing parsed ones
// whose signed digest did not change) and parses them.
func (a *Agent) fetchFleet(ctx context.Context) ([]policy.FleetCandidate, map[string][]byte, error) {
	names, err := a.catalog.Policies()
	if err != nil {
		return nil, nil, err
	}
	if len(names) > policy.MaxFleetDocs {
		return nil, nil, fmt.Errorf("catalog has %d policy documents, more than the %d an agent reads", len(names), policy.MaxFleetDocs)
	}
	a.mu.Lock()
	seen := a.fleet.seen
	a.mu.Unlock()
	fresh := map[string]policy.FleetCandidate{}
	var cands []policy.FleetCandidate
	raw := map[string][]byte{}
	for _, n := range names {
		digest, err := a.catalog.PolicyDigest(n)
		if err != nil {
			return nil, nil, err
		}
		c, ok := seen[digest]
		if !ok {
			b, err := a.catalog.Policy(ctx, n, policy.MaxFleetDocSize)
			if err != nil {
				return nil, nil, fmt.Errorf("policy %s: %w", n, err)
			}
			d, perr := policy.ParseFleetDoc(catalog.PolicyKey(n), b)
			c = policy.FleetCandidate{Name: n, Doc: d, Err: perr}
			if d != nil {
				c.Raw = b
			}
		}
		fresh[digest] = c
		cands = append(cands, c)
		raw[n] = c.Raw
	}
	a.mu.Lock()
	a.fleet.seen = fresh
	a.mu.Unlock()
	return cands, raw, nil
}

// saveFleetLocked writes the documents in force, replacing the file whole
// (write, sync, rename) so that a crash leaves the old or the new set.
func (a *Agent) saveFleetLocked() error {
	out := map[string]string{}
	for n, b := range a.fleet.raw {
		out[n] = string(b)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return writeFileAtomic(a.fleetFile(), b)
}

// fleetReport puts the fleet policy status into a report, within its
// limits (report.MaxPolicyDocs).
func fleetReport(p *report.Policy, fs *FleetPolicyStatus) {
	if fs == nil {
		return
	}
	short := func(s string) string { return report.Trim(s, report.MaxNameLen) }
	for _, d := range fs.Documents {
		if len(p.PolicyDocs) < report.MaxPolicyDocs {
			p.PolicyDocs = append(p.PolicyDocs, short(d))
		}
	}
	p.Sources = map[string]string{}
	for k, v := range fs.Sources {
		if len(p.Sources) < report.MaxPolicyDocs {
			p.Sources[short(k)] = short(v)
		}
	}
	var errs []string
	if fs.Error != "" {
		errs = append(errs, fs.Error)
	}
	for _, r := range fs.Refused {
		errs = append(errs, "refused "+r.Name+": "+r.Error)
	}
	p.PolicyError = report.Trim(strings.Join(errs, "; "), report.MaxText)
}

// fleetStatusLocked describes the fleet policy for status; origins are
// the rate origins of the profile in force.
func (a *Agent) fleetStatusLocked(eff policy.FleetEffective, rateOrigins map[string]string) *FleetPolicyStatus {
	var restart string
	if eff.Mode.Peers() != a.cfg.Mode.Peers() || eff.Mode.Origin() != a.cfg.Mode.Origin() {
		restart = fmt.Sprintf("mode %s: uploads follow now; peer connections change at the next restart (started in %s)", eff.Mode, a.cfg.Mode)
	}
	if len(eff.Docs) == 0 && len(a.fleet.refused) == 0 && a.fleet.err == "" && restart == "" {
		return nil // all local, as before fleet policy
	}
	s := &FleetPolicyStatus{Documents: slices.Clone(eff.Docs), Sources: map[string]string{},
		Refused: slices.Clone(a.fleet.refused), Error: a.fleet.err, Restart: restart}
	for k, v := range eff.Origins {
		s.Sources[k] = v
	}
	for k, v := range rateOrigins {
		s.Sources[k] = v
	}
	for _, w := range eff.Windows {
		s.Windows = append(s.Windows, w.String())
	}
	return s
}

func refusedName(rs []policy.FleetRefusal, name string) bool {
	return slices.ContainsFunc(rs, func(r policy.FleetRefusal) bool { return r.Name == name })
}

func refusalText(rs []policy.FleetRefusal) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s:%s:%v;", r.Name, r.Error, r.KeptLast)
	}
	return b.String()
}

func sameRaw(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

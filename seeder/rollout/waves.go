package rollout

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/policy"
)

// PlanView is a signed rollout plan as the dashboard shows it: its state,
// why it stopped, and the listed agents by wave.
type PlanView struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Channel string `json:"channel,omitempty"`
	State   string `json:"state"`  // running, paused, halted, aborted, done
	Reason  string `json:"reason"` // why paused, halted or aborted
	Opened  int    `json:"opened"` // waves open
	// Since is when the newest open wave opened; Soak how long it runs.
	Since       string             `json:"since"`
	Soak        string             `json:"soak"`
	MaxFailures float64            `json:"max_failures"`
	Waves       []policy.WaveTally `json:"waves"`
	Error       string             `json:"error,omitempty"` // the plan could not be read
}

// maxPlansShown bounds the catalog reads of one view: one plan per
// release name.
const maxPlansShown = 20

// planViews reads the plans of the view's release names and places the
// view's agent list (bounded, cut to the tenant) in their waves with
// policy.TallyWaves, as the agents and "rollout status --origin" do.
// Reports carry no labels: agents of label waves show in a later wave.
func (s *Reports) planViews(ctx context.Context, v View) []PlanView {
	if s.origin.Plan == nil {
		return nil
	}
	var names []string
	for _, r := range v.Releases {
		if !slices.Contains(names, r.Name) && len(names) < maxPlansShown {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	var out []PlanView
	for _, name := range names {
		p, err := s.plans.get(ctx, s.now(), name, s.origin.Plan)
		if err != nil {
			out = append(out, PlanView{Name: name, Error: err.Error()})
			continue
		}
		if p == nil {
			continue
		}
		out = append(out, planView(p, v.AgentList))
	}
	return out
}

func planView(p *catalog.RolloutPlan, rows []AgentRow) PlanView {
	pv := PlanView{ID: p.ID, Name: p.Name, Version: p.Version, Channel: p.Channel, State: p.State,
		Reason: p.Reason, Opened: p.Opened, Since: p.Since.UTC().Format(time.RFC3339),
		Soak: time.Duration(p.Soak).String(), MaxFailures: p.MaxFailures}
	waves, err := policy.ParseWaveList(p.Waves)
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	ref := p.Name + "@" + p.Version + " "
	agents := make([]policy.WaveAgent, 0, len(rows))
	for _, a := range rows {
		wa := policy.WaveAgent{WaveMember: policy.WaveMember{ID: a.AgentID, Site: a.Site}, Name: a.Name}
		if wa.Name == "" {
			wa.Name = a.AgentID
		}
		if a.Site != "" {
			wa.Name = a.Site + "/" + wa.Name
		}
		for _, r := range a.Releases {
			if st, ok := strings.CutPrefix(r, ref); ok {
				wa.State = st
			}
		}
		agents = append(agents, wa)
	}
	pv.Waves = policy.TallyWaves(p.ID, waves, agents)
	return pv
}

// planTTL is how long a plan read for the view is reused: the dashboard
// polls every few seconds, and each read is a catalog store request. A
// state change shows within it.
const planTTL = 10 * time.Second

// planCache keeps the plans the views read for planTTL. At most
// maxCachedPlans names: release names come from reports.
type planCache struct {
	mu sync.Mutex
	m  map[string]cachedPlan
}

type cachedPlan struct {
	p   *catalog.RolloutPlan
	err error
	at  time.Time
}

const maxCachedPlans = 256

func (c *planCache) get(ctx context.Context, now time.Time, name string, read func(context.Context, string) (*catalog.RolloutPlan, error)) (*catalog.RolloutPlan, error) {
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < planTTL && now.Sub(e.at) >= 0 {
		return e.p, e.err
	}
	// Two views at once may both read: harmless, and no lock is held
	// over the store.
	p, err := read(ctx, name)
	if ctx.Err() != nil {
		return p, err // this caller went away: not the plan's news
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPlans {
		c.m = map[string]cachedPlan{}
	}
	c.m[name] = cachedPlan{p, err, now}
	c.mu.Unlock()
	return p, err
}

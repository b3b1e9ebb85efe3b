package rollout

import (
	"context"
	"slices"
	"strings"
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
		p, err := s.origin.Plan(ctx, name)
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

package seeder

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/seeder/rollout"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Egress is what the origin has sent; the rollout view shows it.
type Egress = rollout.Egress

// openReports opens the agents' report store (package rollout) with what
// it takes from the origin: the tracker's peers, the egress counters, the
// report and operator checks and the bounded refusal log.
// With shared state the reports live in Redis, not in reports.db.
func (o *Origin) openReports() (*rollout.Reports, error) {
	ro := rollout.Origin{
		Peers:      o.swarmPeers,
		Egress:     o.Egress,
		Authorize:  o.authorizeReport,
		Operator:   o.operator,
		Tokens:     o.tokensOn(),
		Plan:       o.rolloutPlan,
		LogRefusal: func() (bool, int) { return o.refusals.Allow(time.Now()) },
	}
	if o.quarantine != nil {
		ro.Answer = o.quarantineAnswer
	}
	if o.shared != nil {
		return rollout.OpenShared(o.cfg.Reports, o.shared, ro, o.log)
	}
	return rollout.Open(o.cfg.Reports, o.cfg.CacheDir, ro, o.log)
}

// tickReports runs the rollout's Tick until ctx ends: all the report
// state that time changes (forgetting, series, alert starts) moves here,
// never on a GET or a scrape.
func (o *Origin) tickReports(ctx context.Context) {
	t := time.NewTicker(rollout.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			o.reports.Tick(now)
			if o.quarantine != nil {
				o.applyQuarantine(ctx)
			}
		}
	}
}

// swarmPeers is the tracker's view of a swarm, as the rollout needs it.
func (o *Origin) swarmPeers(infoHash [20]byte) []rollout.Peer {
	peers := o.tracker.Peers(infoHash)
	out := make([]rollout.Peer, 0, len(peers))
	for _, p := range peers {
		out = append(out, rollout.Peer{ID: p.ID, Left: p.Left, Origin: p.Identity.Role == tracker.RoleOrigin})
	}
	return out
}

// authorizeReport admits every report while the origin requires no
// tokens; with tokens, a report needs a valid one whose claims match the
// tenant, site and region it reports.
func (o *Origin) authorizeReport(r *http.Request, rep *report.Report) (int, error) {
	if o.tokenKey == nil {
		return 0, nil
	}
	c, err := o.authenticate(r, false)
	if err == nil {
		err = agentClaims(c, rep.Tenant, rep.Site, rep.Region)
	}
	if err == nil && c.Agent != "" && c.Agent != rep.AgentID {
		err = fmt.Errorf("token is for agent %q, not %q", c.Agent, rep.AgentID)
	}
	if err != nil {
		return statusFor(err), err
	}
	return 0, nil
}

// rolloutPlan reads name's signed plan for the rollout view; without a
// catalog client (tests) there are none.
func (o *Origin) rolloutPlan(ctx context.Context, name string) (*catalog.RolloutPlan, error) {
	if o.catalog == nil {
		return nil, nil
	}
	return o.catalog.RolloutPlan(ctx, name)
}

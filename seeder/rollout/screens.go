package rollout

import (
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// ScreenAtRisk is a signage screen whose scheduled content was not
// verified at air time (issue 19): the agent keeps the previous content
// on it and says what it misses, so the operator can act before viewers
// notice (raise the site's profile, open a window, move the schedule).
type ScreenAtRisk struct {
	AgentID string    `json:"agent_id"`
	Name    string    `json:"name"`
	Site    string    `json:"site,omitempty"`
	Region  string    `json:"region,omitempty"`
	Screen  string    `json:"screen"`
	Playing string    `json:"playing,omitempty"` // what stays on air
	Wanted  string    `json:"wanted"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"` // the missed air time
}

// maxScreensShown bounds the list in the view like the stalled list.
const maxScreensShown = 100

// screensAtRisk adds a live agent's screens at risk to list and returns
// how many screens the agent serves.
func screensAtRisk(list []ScreenAtRisk, rep *report.Report) ([]ScreenAtRisk, int) {
	for _, sc := range rep.Screens {
		if !sc.AtRisk {
			continue
		}
		list = append(list, ScreenAtRisk{AgentID: rep.AgentID, Name: rep.Name, Site: rep.Site, Region: rep.Region,
			Screen: sc.Screen, Playing: sc.Playing, Wanted: sc.Wanted, Reason: sc.Reason, Since: sc.Since})
	}
	return list, len(rep.Screens)
}

// finishScreens sorts (longest missed first) and bounds the list.
func finishScreens(v *View) {
	if v.ScreensAtRisk == nil {
		v.ScreensAtRisk = []ScreenAtRisk{}
	}
	slices.SortFunc(v.ScreensAtRisk, func(x, y ScreenAtRisk) int {
		if c := x.Since.Compare(y.Since); c != 0 {
			return c
		}
		return strings.Compare(x.Site+"/"+x.Screen, y.Site+"/"+y.Screen)
	})
	v.ScreensAtRiskTotal = len(v.ScreensAtRisk)
	v.ScreensAtRisk = v.ScreensAtRisk[:min(len(v.ScreensAtRisk), maxScreensShown)]
}

package wavegate

import (
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/policy"
)

// frozen reports whether a catalog freeze holds at now for name@version
// (issue 18: no wave opens during a freeze unless the release is urgent),
// and why. Opening a wave then would start its soak with no agent able to
// activate, so the soak would prove nothing.
func frozen(repo *catalog.Repo, name, version string, now time.Time) (bool, string) {
	fs, err := repo.Freezes()
	if err != nil {
		return true, "freeze list unreadable: " + err.Error()
	}
	urgent := false
	if rels, err := repo.Releases(); err == nil {
		for _, r := range rels {
			if r.Name == name && r.Version == version {
				urgent = r.Urgent
			}
		}
	}
	pf := make([]policy.Freeze, 0, len(fs))
	for _, f := range fs {
		pf = append(pf, policy.Freeze{ID: f.ID, From: f.From, To: f.To, Reason: f.Reason})
	}
	ok, why, _ := policy.ActivationAllowed(policy.Activation{Urgent: urgent, Freezes: pf}, now)
	return !ok, why
}

package rollout

import (
	"net/http"
	"strings"
	"testing"
)

// Agents' binary versions come through the report's strict decoding and
// are counted in the view; a rolled-back self-update shows on the agent.
func TestViewCountsAgentVersions(t *testing.T) {
	s, _ := newTestStore(t, "", Origin{})
	h := mux(s)
	for i, v := range []string{"2.0.0", "2.0.0", "1.0.0", ""} {
		r := mkReport(string(rune('a'+i)), "s1", "eu", "1.0")
		r.AgentVersion = v
		if v == "1.0.0" {
			r.SelfUpdate = "2.0.0 rolled back: trial: exited before reporting healthy"
		}
		if rec := post(t, h, mustJSON(r), nil); rec.Code != http.StatusNoContent {
			t.Fatalf("report %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	ro := s.View()
	if ro.AgentVersions["2.0.0"] != 2 || ro.AgentVersions["1.0.0"] != 1 || len(ro.AgentVersions) != 2 {
		t.Errorf("versions %v", ro.AgentVersions)
	}
	found := false
	for _, a := range ro.AgentList {
		if a.Version == "1.0.0" {
			found = strings.Contains(a.SelfUpdate, "rolled back")
		}
	}
	if !found {
		t.Errorf("rolled-back agent not shown: %+v", ro.AgentList)
	}
	long := mkReport("z", "s1", "eu", "1.0")
	long.AgentVersion = strings.Repeat("v", 200)
	if rec := post(t, h, mustJSON(long), nil); rec.Code != http.StatusBadRequest {
		t.Errorf("overlong agent_version: %d", rec.Code)
	}
}

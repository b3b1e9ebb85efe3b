package report

import (
	"fmt"
	"strings"
	"testing"
)

func TestPolicyFleetFieldsBounded(t *testing.T) {
	base := Report{V: Version, AgentID: "a1", IntervalSeconds: 30}
	ok := base
	ok.Policy = Policy{PolicyDocs: []string{"stores"}, Sources: map[string]string{"down": "policy:stores"}, PolicyError: "refused x: bad"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid fleet fields refused: %v", err)
	}
	many := map[string]string{}
	for i := range MaxPolicyDocs + 1 {
		many[fmt.Sprint(i)] = "local"
	}
	for name, p := range map[string]Policy{
		"too many docs":    {PolicyDocs: make([]string, MaxPolicyDocs+1)},
		"too many sources": {Sources: many},
		"control char":     {PolicyDocs: []string{"a\x00"}},
		"long source":      {Sources: map[string]string{"down": strings.Repeat("x", MaxNameLen+1)}},
		"long error":       {PolicyError: strings.Repeat("x", MaxText+1)},
	} {
		r := base
		r.Policy = p
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestScreensBounded(t *testing.T) {
	base := Report{V: Version, AgentID: "a1", IntervalSeconds: 30}
	ok := base
	ok.Screens = []Screen{{Screen: "lobby", Playing: "loop@1/index.m3u8", AtRisk: true, Wanted: "promo@2 index.m3u8", Reason: "downloading"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid screens refused: %v", err)
	}
	for name, sc := range map[string][]Screen{
		"too many":     make([]Screen, MaxScreens+1),
		"bad screen":   {{Screen: "a/b"}},
		"control char": {{Screen: "a", Reason: "x\x00"}},
		"long wanted":  {{Screen: "a", Wanted: strings.Repeat("x", MaxText+1)}},
	} {
		r := base
		r.Screens = sc
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// TestLogLinePerReleaseStateChange checks the shared log fields: every
// state change of a release is one JSON line naming release, version,
// infohash, site and tenant, with from and to.
func TestLogLinePerReleaseStateChange(t *testing.T) {
	var buf testenv.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	m := publish(t, sw, "app", "1.0", 11, map[string]int64{"bin/app": 2 << 20, "README": 100}, "stable")
	cfg := sw.AgentConfig("a1", "store-7", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.Tenant = "acme"
	ra, err := sw.StartAgent(context.Background(), "a1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", time.Minute, ra)
	// The origin accepted the agent's reports under the same identity.
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get(sw.OriginURL + "/api/v1/rollout")
		if err != nil {
			return err
		}
		var ro struct {
			AgentList []struct {
				Name, Site, Tenant string
			} `json:"agent_list"`
		}
		json.NewDecoder(resp.Body).Decode(&ro)
		resp.Body.Close()
		if len(ro.AgentList) != 1 || ro.AgentList[0].Name != "a1" || ro.AgentList[0].Site != "store-7" || ro.AgentList[0].Tenant != "acme" {
			return fmt.Errorf("origin has no report from a1: %+v", ro)
		}
		return nil
	})
	rec := httptest.NewRecorder()
	ra.Agent.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	if !bytes.Contains(rec.Body.Bytes(), []byte(`swarmship_agent_reports_total{result="ok"}`)) {
		t.Errorf("agent metrics lack report counts")
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}

	type line map[string]any
	var transitions []line
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if l["msg"] == "release state" {
			transitions = append(transitions, l)
		}
	}
	want := [][2]string{{"", "queued"}, {"queued", "downloading"}, {"downloading", "verified"}, {"verified", "active"}}
	if len(transitions) != len(want) {
		t.Fatalf("%d release state lines, want %d: %v", len(transitions), len(want), transitions)
	}
	for i, l := range transitions {
		if l["from"] != want[i][0] || l["to"] != want[i][1] {
			t.Errorf("transition %d: %v -> %v, want %s -> %s", i, l["from"], l["to"], want[i][0], want[i][1])
		}
		for k, v := range map[string]string{"release": "app", "version": "1.0", "infohash": m.InfoHash, "site": "store-7", "tenant": "acme"} {
			if l[k] != v {
				t.Errorf("transition %d: %s = %v, want %q (line %v)", i, k, l[k], v, l)
			}
		}
	}
}

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/localswarm"
)

// With tracing.otlp_endpoint set, catalog refresh, download, verify and
// activate spans reach an OTLP/HTTP collector.
func TestTracesExportedOverOTLP(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	sw := newSwarm(t, localswarm.OriginOptions{})
	publish(t, sw, "app", "1.0", 97, map[string]int64{"app.bin": 1 << 20}, "stable")
	cfg := sw.AgentConfig("traced", "s", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.Tracing.OTLPEndpoint = collector.URL
	ra, err := sw.StartAgent(context.Background(), "traced", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	if err := ra.Stop(); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	mu.Lock()
	all := bytes.Join(bodies, nil)
	mu.Unlock()
	for _, name := range []string{"swarmship.catalog.refresh", "swarmship.download", "swarmship.verify", "swarmship.activate", "swarmship-agent"} {
		if !bytes.Contains(all, []byte(name)) {
			t.Errorf("collector got no %q (%d requests)", name, len(bodies))
		}
	}
}

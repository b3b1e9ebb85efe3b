package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/localswarm"
)

// corruptingWriter flips every payload byte it passes on and counts them.
type corruptingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w corruptingWriter) Write(b []byte) (int, error) {
	c := make([]byte, len(b))
	for i := range b {
		c[i] = b[i] ^ 0x5a
	}
	w.n.Add(int64(len(b)))
	return w.ResponseWriter.Write(c)
}

// An origin whose web seed serves corrupted bytes cannot make an agent
// pull the release over and over: each piece that fails its hash is asked
// for again only after a growing back-off, and the failures are counted.
// Before, every piece was retried about every second (54 MiB pulled for a
// 3 MiB release).
func TestCorruptOriginPiecesBackOff(t *testing.T) {
	var served atomic.Int64
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/data/") {
				w = corruptingWriter{w, &served}
			}
			next.ServeHTTP(w, r)
		})
	}})
	m := publish(t, sw, "app", "1.0", 33, map[string]int64{"app.bin": 3 << 20}, "stable")
	agents := startAgents(t, sw, 1, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Offload.StartupGrace = 100 * time.Millisecond
	})
	const watch = 15 * time.Second
	time.Sleep(watch)
	pulled := float64(served.Load()) / float64(m.TotalSize)
	rs := releaseStatus(agents[0], "app", "1.0")
	if rs.Completed == m.TotalSize {
		t.Fatal("the release completed from a corrupting origin")
	}
	rec := httptest.NewRecorder()
	agents[0].Agent.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	var fails string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "swarmship_agent_origin_piece_hash_failures_total ") {
			fails = strings.TrimPrefix(l, "swarmship_agent_origin_piece_hash_failures_total ")
		}
	}
	t.Logf("in %v the agent pulled %.2fx the release (%d bytes) from a corrupting origin; hash failures counted: %s", watch, pulled, served.Load(), fails)
	if pulled > 3 {
		t.Errorf("pulled %.2fx the release in %v; want at most 3x", pulled, watch)
	}
	if pulled < 0.9 {
		t.Errorf("pulled only %.2fx: the agent did not even try every piece once", pulled)
	}
	if fails == "" || fails == "0" {
		t.Errorf("hash failures not counted (metric %q)", fails)
	}
}

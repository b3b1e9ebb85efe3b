package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// answerLog records the peers of every tracker answer to a relay-mode
// announce.
type answerLog struct {
	mu      sync.Mutex
	answers int
	peers   []netip.AddrPort
}

func (l *answerLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/announce") || r.URL.Query().Get("relay") != "origin" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var ans struct {
			Peers  string `bencode:"peers"`
			Peers6 string `bencode:"peers6"`
		}
		if err := bencode.Unmarshal(rec.Body.Bytes(), &ans); err == nil {
			l.mu.Lock()
			l.answers++
			for i := 0; i+6 <= len(ans.Peers); i += 6 {
				ip := netip.AddrFrom4([4]byte([]byte(ans.Peers[i : i+4])))
				l.peers = append(l.peers, netip.AddrPortFrom(ip, uint16(ans.Peers[i+4])<<8|uint16(ans.Peers[i+5])))
			}
			if len(ans.Peers6) > 0 {
				l.peers = append(l.peers, netip.AddrPort{}) // any IPv6 address is a leak
			}
			l.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func relaySwarm(t *testing.T, cfg relay.Config, log *answerLog) *localswarm.Swarm {
	cfg.Mode = relay.ModeOn
	return newSwarm(t, localswarm.OriginOptions{
		Configure:   func(c *seeder.Config) { c.Relay = cfg },
		WrapHandler: log.wrap,
	})
}

// relayAgents starts n relay-mode agents over two sites, with locality
// (""; the default, gateway).
func relayAgents(t *testing.T, sw *localswarm.Swarm, n int, locality string) []*localswarm.RunningAgent {
	return startAgents(t, sw, n, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Tenant = "acme"
		c.Swarm.Relay = agent.RelayOrigin
		c.Swarm.Locality = locality // not "any": it turns PEX on
	})
}

// Relay-mode agents complete through the relay and never learn another
// agent's address: not from the tracker, not from a connection.
func TestRelayModeAgentsCompleteWithoutAddresses(t *testing.T) {
	var log answerLog
	sw := relaySwarm(t, relay.Config{}, &log)
	m := publish(t, sw, "app", "1.0", 161, map[string]int64{"app.bin": 6 << 20}, "stable")
	agents := relayAgents(t, sw, 3, "region")

	seen := map[string]bool{}
	deadline := time.Now().Add(90 * time.Second)
	for !allActive(agents, "app", "1.0") && time.Now().Before(deadline) {
		for _, ra := range agents {
			for _, a := range releaseStatus(ra, "app", "1.0").PeerAddrs {
				seen[a] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitActive(t, "app", "1.0", time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	for a := range seen {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !relay.IsHandle(ap) {
			t.Errorf("a relay-mode agent was connected to %s, not a relay handle", a)
		}
	}
	log.mu.Lock()
	answers, peers := log.answers, append([]netip.AddrPort(nil), log.peers...)
	log.mu.Unlock()
	if answers == 0 {
		t.Fatal("no relay-mode announce seen")
	}
	for _, p := range peers {
		if !relay.IsHandle(p) {
			t.Errorf("the tracker gave a relay-mode agent the address %v", p)
		}
	}
	for _, p := range sw.Origin.Tracker().Peers(hexHash(t, m.InfoHash)) {
		if !relay.IsHandle(p.Addr) {
			t.Errorf("the tracker stores %v for a relay-mode agent", p.Addr)
		}
	}

	// The relay carried the agents' exchange, and says so.
	var peerBytes, agentRelay int64
	for _, ra := range agents {
		peerBytes += releaseStatus(ra, "app", "1.0").Downloaded.Peer
		if st := ra.Agent.Status().Relay; st != nil {
			agentRelay += st.Bytes
		}
	}
	// Keep-alives still flow: read the egress figure first, then the stats.
	eg := sw.Origin.Egress()
	st := sw.Origin.Relay().Stats()
	t.Logf("peer bytes %d, relay carried %d (egress figure %d), agents counted %d, %d answers with %d handles", peerBytes, st.Bytes, eg.Relay, agentRelay, answers, len(peers))
	if peerBytes == 0 || st.Bytes < peerBytes || eg.Relay < peerBytes || eg.Relay > st.Bytes {
		t.Errorf("relay bytes %d (egress %d) for %d peer bytes", st.Bytes, eg.Relay, peerBytes)
	}
	body := relayGet(t, sw.OriginURL+"/metrics")
	if !strings.Contains(body, `swarmship_relay_bytes_total{site="site-0",tenant="acme"}`) || !strings.Contains(body, `swarmship_origin_egress_bytes_total{kind="relay"}`) {
		t.Errorf("/metrics lacks the relay figures")
	}
	rec := httptest.NewRecorder()
	agents[0].Agent.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	if !strings.Contains(rec.Body.String(), "swarmship_agent_relay_bytes_total ") || strings.Contains(rec.Body.String(), "swarmship_agent_relay_bytes_total 0\n") {
		t.Errorf("agent /metrics lacks its relay bytes")
	}
	var view struct {
		Egress struct {
			Relay int64 `json:"relay"`
		} `json:"origin_egress"`
	}
	if err := json.Unmarshal([]byte(relayGet(t, sw.OriginURL+"/api/v1/rollout")), &view); err != nil || view.Egress.Relay == 0 {
		t.Errorf("dashboard view: relay egress %d, err %v", view.Egress.Relay, err)
	}
}

// At the tenant's byte cap the relay refuses and cuts; the agents still
// complete from the origin.
func TestRelayCapReachedAgentsStillComplete(t *testing.T) {
	var log answerLog
	sw := relaySwarm(t, relay.Config{MaxBytesPerDay: 256 << 10}, &log)
	m := publish(t, sw, "app", "1.0", 162, map[string]int64{"app.bin": 6 << 20}, "stable")
	agents := relayAgents(t, sw, 3, "") // gateway: election and views by handle
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	st := sw.Origin.Relay().Stats()
	t.Logf("relay stats %+v", st)
	if st.Refused[relay.ReasonByteCap]+st.Refused[relay.ReasonCut] == 0 {
		t.Errorf("cap never reached: %+v", st)
	}
	// The relay charges bytes before forwarding them: the cap is exact
	// however many connections are open when it is reached.
	if st.Bytes > 256<<10 {
		t.Errorf("relay carried %d bytes past a cap of %d", st.Bytes, 256<<10)
	}
}

func relayGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return string(b)
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

const secretToken = "tok-SECRET-7b1f0c9e4d2a"

// requestSpy records, per kind of origin request, how many carried the
// token in the Authorization header, and every URL that carried it.
type requestSpy struct {
	mu       sync.Mutex
	withAuth map[string]int
	leaks    []string
}

func (s *requestSpy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := "other"
		switch p := r.URL.Path; {
		case strings.HasSuffix(p, "/announce"):
			kind = "announce"
		case strings.HasSuffix(p, "/swarm"):
			kind = "swarm"
		case strings.HasPrefix(p, "/metadata/"), strings.HasPrefix(p, "/torrents/"):
			kind = "catalog"
		case strings.HasPrefix(p, "/api/v1/report"):
			kind = "report"
		}
		s.mu.Lock()
		if strings.Contains(r.URL.String(), secretToken) || strings.Contains(r.RequestURI, secretToken) {
			s.leaks = append(s.leaks, r.RequestURI)
		}
		if r.Header.Get("Authorization") == "Bearer "+secretToken {
			s.withAuth[kind]++
		}
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// closedURL is an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Agents with a token send it in an Authorization header to the catalog,
// the tracker (announces and swarm views) and the report endpoint, and in
// no URL; a plain BitTorrent client that knows the infohash gets no byte
// from them (tokens imply peer TLS); and when the tracker, the report
// endpoint or the catalog cannot be reached, neither the log nor the
// status API shows the token.
func TestTokenOnlyInAuthorizationHeader(t *testing.T) {
	pkiDir := t.TempDir()
	var specs []peertlstest.CertSpec
	for _, n := range []string{"agent-1", "agent-2", "lost-tracker", "lost-catalog"} {
		specs = append(specs, peertlstest.CertSpec{Name: n, Identity: peertls.Identity{Tenant: "acme", Site: "site-0", Region: "eu"}})
	}
	if err := peertlstest.GeneratePKI(pkiDir, specs...); err != nil {
		t.Fatal(err)
	}
	spy := &requestSpy{withAuth: map[string]int{}}
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(h http.Handler) http.Handler { return spy.wrap(slowPayload(20 * time.Millisecond)(h)) }})
	m := publish(t, sw, "app", "1.0", 71, map[string]int64{"app.bin": 6 << 20}, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}

	// Without peer TLS a token is refused at start.
	bare := sw.AgentConfig("bare", "site-0", "eu", sub)
	bare.Tenant, bare.Token = "acme", secretToken
	if _, err := sw.StartAgent(context.Background(), "bare", bare); err == nil || !strings.Contains(err.Error(), "peer_tls") {
		t.Fatalf("token without peer_tls: err = %v, want a refusal naming peer_tls", err)
	} else if strings.Contains(err.Error(), secretToken) {
		t.Fatalf("the refusal shows the token: %v", err)
	}

	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(name string, tweak func(*agent.Config)) *localswarm.RunningAgent {
		cfg := sw.AgentConfig(name, "site-0", "eu", sub)
		cfg.Tenant, cfg.Token = "acme", secretToken
		cfg.PeerTLS = peertlstest.Config(pkiDir, name)
		if tweak != nil {
			tweak(cfg)
		}
		ra, err := sw.StartAgentWith(context.Background(), name, cfg, agent.Options{Logger: logger.With("agent", name)})
		if err != nil {
			t.Fatal(err)
		}
		return ra
	}
	agents := []*localswarm.RunningAgent{start("agent-1", nil), start("agent-2", nil)}
	lostTracker := start("lost-tracker", func(c *agent.Config) {
		c.Tracker = closedURL(t) + "/announce"
		c.Report.URL = closedURL(t) + "/"
	})
	lostCatalog := start("lost-catalog", func(c *agent.Config) { c.Catalog.URL = closedURL(t) + "/" })

	tb, err := catalog.ReadAll(context.Background(), sw.Store, catalog.TorrentKey("app", "1.0"), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	plain := newOutsider(t, "plain", nil, mi)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ports []int
			for _, ra := range append(agents, lostTracker) {
				ports = append(ports, ra.Agent.PeerPort())
			}
			plain.knock(ports)
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	waitActive(t, "app", "1.0", 60*time.Second, append(agents, lostTracker)...)
	time.Sleep(2 * time.Second) // seeding agents, knocked at; reports and swarm views go on
	close(stop)
	<-done
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}

	if st := plain.t.Stats(); st.BytesReadUsefulData.Int64() != 0 || plain.t.BytesCompleted() != 0 {
		t.Errorf("a plain client got %d bytes from agents with tokens", st.BytesReadUsefulData.Int64())
	} else {
		t.Logf("plain client: %d dials, 0 bytes", plain.dials.Load())
	}
	if plain.dials.Load() == 0 {
		t.Error("the plain client never dialled: the test proves nothing")
	}

	spy.mu.Lock()
	t.Logf("requests with the token in Authorization: %v", spy.withAuth)
	for _, l := range spy.leaks {
		t.Errorf("token in a URL: %s", l)
	}
	for _, kind := range []string{"announce", "swarm", "catalog", "report"} {
		if spy.withAuth[kind] == 0 {
			t.Errorf("no %s request carried the token in Authorization", kind)
		}
	}
	spy.mu.Unlock()

	out := logs.String()
	for _, ra := range []*localswarm.RunningAgent{lostTracker, lostCatalog} {
		b, _ := json.Marshal(ra.Agent.Status())
		if strings.Contains(string(b), secretToken) {
			t.Errorf("%s status shows the token: %s", ra.Name, b)
		}
	}
	if strings.Contains(out, secretToken) {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, secretToken) {
				t.Errorf("token in the log: %s", line)
			}
		}
	}
	// The failures were logged (with their URLs): the check above saw them.
	for _, want := range []string{"report to origin failed", "tracker swarm view unavailable", "catalog refresh failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q line", want)
		}
	}
}

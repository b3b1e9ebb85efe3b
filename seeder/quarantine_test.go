package seeder_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder"
)

// The quarantine API: operators only; a tenant's operator acts on its
// own tenant and never on addresses; agents learn the list in the answer
// to their reports, and only their tenant's (and fleet-wide) entries.
func TestQuarantineAPI(t *testing.T) {
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	globex := to.issue(t, token.Claims{Tenant: "globex", Site: "g1"})
	acmeOps := to.issue(t, token.Claims{Role: token.RoleOperator, Tenant: "acme"})
	fleet := to.issue(t, token.Claims{Role: token.RoleOperator})
	peer := "peer:" + strings.Repeat("2d", 20)
	post := func(tok string, body map[string]string) int {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", to.srv.URL+seeder.QuarantinePath, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range bearer(tok) {
			req.Header.Set(k, v)
		}
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	for who, c := range map[string]struct {
		tok  string
		body map[string]string
		want int
	}{
		"nobody":              {"", map[string]string{"entry": peer}, http.StatusUnauthorized},
		"agent":               {acme, map[string]string{"entry": peer}, http.StatusForbidden},
		"tenant ops, address": {acmeOps, map[string]string{"entry": "addr:10.0.0.1"}, http.StatusForbidden},
		"tenant ops, other":   {acmeOps, map[string]string{"entry": peer, "tenant": "globex"}, http.StatusForbidden},
		"bad entry":           {fleet, map[string]string{"entry": "peer:xyz"}, http.StatusBadRequest},
		"unknown field":       {fleet, map[string]string{"entry": peer, "who": "me"}, http.StatusBadRequest},
		"tenant ops":          {acmeOps, map[string]string{"entry": peer, "reason": "stalls"}, http.StatusCreated},
		"fleet address":       {fleet, map[string]string{"entry": "addr:192.0.2.7", "tenant": "globex"}, http.StatusCreated},
	} {
		if got := post(c.tok, c.body); got != c.want {
			t.Errorf("%s: POST answered %d, want %d", who, got, c.want)
		}
	}
	list := func(tok string) []seeder.QuarantineEntry {
		t.Helper()
		resp, body := get(t, "GET", to.srv.URL+seeder.QuarantinePath, bearer(tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %s %s", resp.Status, body)
		}
		var out []seeder.QuarantineEntry
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if l := list(fleet); len(l) != 2 {
		t.Errorf("fleet list %+v, want 2 entries", l)
	}
	if l := list(acmeOps); len(l) != 1 || l[0].Entry != peer || l[0].Tenant != "acme" || l[0].Reason != "stalls" {
		t.Errorf("acme's list %+v, want its own entry only", l)
	}

	// Agents get their tenant's entries with the answer to their report.
	answer := func(tok, id, tenant, site, ih string) []string {
		t.Helper()
		code, body := to.report(t, tok, agentReport(id, tenant, site, ih))
		if code == http.StatusNoContent {
			return nil
		}
		var ans report.Answer
		if code != http.StatusOK || json.Unmarshal([]byte(body), &ans) != nil {
			t.Fatalf("report: %d %s", code, body)
		}
		return ans.Quarantine
	}
	if q := answer(acme, "agent-acme-1", "acme", "s1", to.ih["app-acme"]); len(q) != 1 || q[0] != peer {
		t.Errorf("acme agent's answer %v, want [%s]", q, peer)
	}
	if q := answer(globex, "agent-globex-1", "globex", "g1", to.ih["app-globex"]); len(q) != 1 || q[0] != "addr:192.0.2.7" {
		t.Errorf("globex agent's answer %v, want the address only", q)
	}

	del := func(tok, entry string) int {
		req, _ := http.NewRequest("DELETE", to.srv.URL+seeder.QuarantinePath+"?entry="+entry, nil)
		for k, v := range bearer(tok) {
			req.Header.Set(k, v)
		}
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	if got := del(acmeOps, peer); got != http.StatusNoContent {
		t.Errorf("acme ops lifting its entry: %d", got)
	}
	if got := del(acmeOps, peer); got != http.StatusNotFound {
		t.Errorf("lifting it twice: %d", got)
	}
	if q := answer(acme, "agent-acme-1", "acme", "s1", to.ih["app-acme"]); len(q) != 0 {
		t.Errorf("acme agent's answer after the lift: %v", q)
	}
}

// A tenant operator's peer entry quarantines that peer ID in its own
// tenant's swarms only: a globex agent with the same peer ID (peer IDs are
// the client's choice) is still served; a fleet entry holds for both.
func TestQuarantineTenantEntryStaysInTenant(t *testing.T) {
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	globex := to.issue(t, token.Claims{Tenant: "globex", Site: "g1"})
	acmeOps := to.issue(t, token.Claims{Role: token.RoleOperator, Tenant: "acme"})
	fleet := to.issue(t, token.Claims{Role: token.RoleOperator})
	const peerID = "-SS0001-abcdefghijkl"
	announce := func(tok, tenant, site, ihHex string) string {
		t.Helper()
		ih, _ := hex.DecodeString(ihHex)
		q := url.Values{"info_hash": {string(ih)}, "peer_id": {peerID}, "port": {"6881"}, "uploaded": {"0"},
			"downloaded": {"0"}, "left": {"1"}, "tenant": {tenant}, "site": {site}, "token": {tok}}
		resp, body := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("announce: %s %s", resp.Status, body)
		}
		return body
	}
	post := func(tok string) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"entry": "peer:" + hex.EncodeToString([]byte(peerID))})
		req, _ := http.NewRequest("POST", to.srv.URL+seeder.QuarantinePath, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range bearer(tok) {
			req.Header.Set(k, v)
		}
		if resp, msg := do(t, req); resp.StatusCode != http.StatusCreated {
			t.Fatalf("quarantine: %s %s", resp.Status, msg)
		}
	}
	post(acmeOps)
	if body := announce(acme, "acme", "s1", to.ih["app-acme"]); !strings.Contains(body, "quarantined") {
		t.Errorf("acme agent under acme's entry: %q, want a refusal", body)
	}
	if body := announce(globex, "globex", "g1", to.ih["app-globex"]); strings.Contains(body, "failure") {
		t.Errorf("globex agent with the same peer ID under acme's entry: %q, want it served", body)
	}
	post(fleet)
	if body := announce(globex, "globex", "g1", to.ih["app-globex"]); !strings.Contains(body, "quarantined") {
		t.Errorf("globex agent under a fleet entry: %q, want a refusal", body)
	}
}

// With tokens off, the quarantine may be read from anywhere but changed
// only from the origin's own host: otherwise anyone who reaches the origin
// could cut agents off.
func TestQuarantineTokensOffLoopbackOnly(t *testing.T) {
	srv, _, _ := newOriginWith(t, seeder.Config{}, func(s *httptest.Server) {
		h := s.Config.Handler
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := r.Header.Get("X-Test-Remote"); a != "" {
				r.RemoteAddr = a // stands in for a caller on another host
			}
			h.ServeHTTP(w, r)
		})
		s.Start()
	})
	peer := "peer:" + strings.Repeat("2d", 20)
	call := func(method, remote string) int {
		t.Helper()
		var body io.Reader
		url := srv.URL + seeder.QuarantinePath
		if method == "POST" {
			b, _ := json.Marshal(map[string]string{"entry": peer})
			body = bytes.NewReader(b)
		} else if method == "DELETE" {
			url += "?entry=" + peer
		}
		req, _ := http.NewRequest(method, url, body)
		req.Header.Set("Content-Type", "application/json")
		if remote != "" {
			req.Header.Set("X-Test-Remote", remote)
		}
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, remote string
		want           int
	}{
		{"POST", "192.0.2.9:4000", http.StatusForbidden},
		{"POST", "[2001:db8::9]:4000", http.StatusForbidden},
		{"POST", "", http.StatusCreated}, // loopback
		{"GET", "192.0.2.9:4000", http.StatusOK},
		{"DELETE", "192.0.2.9:4000", http.StatusForbidden},
		{"DELETE", "[::1]:4000", http.StatusNoContent},
	} {
		if got := call(c.method, c.remote); got != c.want {
			t.Errorf("%s from %q: %d, want %d", c.method, c.remote, got, c.want)
		}
	}
}

// With state on Redis, a quarantine added at one origin is applied by
// the other (its tick applies the list it reads there).
func TestQuarantineSharedOnRedis(t *testing.T) {
	rs := testenv.StartRedis(t)
	cfg := seeder.Config{State: state.Config{Redis: &state.RedisConfig{URL: rs.URL, Prefix: "origins", Timeout: 10 * time.Second}}}
	first, _, _ := newOriginWith(t, cfg, nil)
	second, _, _ := newOriginWith(t, cfg, nil)
	peer := "peer:" + strings.Repeat("2d", 20)
	b, _ := json.Marshal(map[string]string{"entry": peer})
	req, _ := http.NewRequest("POST", first.URL+seeder.QuarantinePath, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if resp, msg := do(t, req); resp.StatusCode != http.StatusCreated {
		t.Fatalf("quarantine at the first origin: %s %s", resp.Status, msg)
	}
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, msg := get(t, "GET", second.URL+seeder.QuarantinePath, nil)
		if resp.StatusCode != 200 || !strings.Contains(msg, peer) {
			return fmt.Errorf("second origin's list: %s %s", resp.Status, msg)
		}
		return nil
	})
}

package seeder_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
)

// tenantOrigin is an origin with tokens, a private catalog and a
// revocation list, serving app-acme@1.0 (tenant acme), app-globex@1.0
// (tenant globex) and shared@1.0 (no tenant).
type tenantOrigin struct {
	srv     *httptest.Server
	o       *seeder.Origin
	key     ed25519.PrivateKey
	revoked string
	ih      map[string]string // infohash by release name
}

const acmePayload = "ACME-SECRET-PAYLOAD-0123456789"

func newTenantOrigin(t *testing.T) *tenantOrigin {
	t.Helper()
	dir := t.TempDir()
	store, keys, root := newTestCatalog(t, dir)
	to := &tenantOrigin{ih: map[string]string{}}
	for name, tenant := range map[string]string{"app-acme": "acme", "app-globex": "globex", "shared": ""} {
		src := filepath.Join(dir, "src-"+name)
		os.MkdirAll(src, 0o755)
		content := "payload of " + name
		if tenant == "acme" {
			content = acmePayload
		}
		os.WriteFile(filepath.Join(src, "file.bin"), []byte(content), 0o644)
		res, err := publish.Publish(t.Context(), store, keys, publish.PublishOptions{
			Name: name, Version: "1.0", Paths: []string{src}, Channels: []string{"stable"}, Tenant: tenant, Workers: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		to.ih[name] = res.InfoHash
	}
	to.key = newTokenKey(t, filepath.Join(dir, "tok"))
	to.revoked = filepath.Join(dir, "revoked.txt")
	os.WriteFile(to.revoked, []byte("# revoked tokens\n"), 0o644)
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := false
	to.o, err = seeder.New(seeder.Config{
		Seed: &seed, CacheDir: filepath.Join(dir, "cache"), PrivateCatalog: true,
		TokenPublicKey: filepath.Join(dir, "tok", token.PublicKeyFile), RevocationList: to.revoked,
	}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { to.o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; to.o.Close() })
	to.srv = httptest.NewServer(to.o.Handler())
	t.Cleanup(to.srv.Close)
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if resp, _ := get(t, "GET", to.srv.URL+"/healthz", nil); resp.StatusCode != 200 {
			return fmt.Errorf("origin did not load its catalog: %s", resp.Status)
		}
		return nil
	})
	return to
}

func (to *tenantOrigin) issue(t *testing.T, c token.Claims) string {
	t.Helper()
	c.IssuedAt, c.Expires = time.Now(), time.Now().Add(time.Hour)
	tok, err := token.Issue(to.key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) map[string]string {
	if tok == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

func (to *tenantOrigin) report(t *testing.T, tok string, r *report.Report) (int, string) {
	t.Helper()
	b, _ := json.Marshal(r)
	req, _ := http.NewRequest("POST", to.srv.URL+report.Path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, body := do(t, req)
	return resp.StatusCode, body
}

// announce sends an agent's announce with its token in the query, the
// way BitTorrent clients carry it.
func (to *tenantOrigin) announce(t *testing.T, tok, tenant, site, infohashHex string) int {
	t.Helper()
	var ih [20]byte
	for i := range ih {
		var b byte
		for _, c := range infohashHex[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			default:
				b |= byte(c-'a') + 10
			}
		}
		ih[i] = b
	}
	q := url.Values{}
	q.Set("info_hash", string(ih[:]))
	q.Set("peer_id", "-SS0001-abcdefghijkl")
	q.Set("port", "6881")
	q.Set("uploaded", "0")
	q.Set("downloaded", "0")
	q.Set("left", "1")
	q.Set("tenant", tenant)
	q.Set("site", site)
	q.Set("token", tok)
	resp, _ := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), nil)
	return resp.StatusCode
}

func agentReport(id, tenant, site, infohash string) *report.Report {
	return &report.Report{
		V: report.Version, AgentID: id, Name: "host-" + id, Tenant: tenant, Site: site, IntervalSeconds: 1, Sent: time.Now(),
		Subscriptions: []report.Subscription{{Subscription: "app", Name: "app-" + tenant, Target: "1.0", Active: "1.0", Ready: true}},
		Releases: []report.Release{{Name: "app-" + tenant, Version: "1.0", InfoHash: infohash, State: "active", Size: 30, Completed: 30,
			Downloaded: report.Bytes{Peer: 30}}},
	}
}

// Attack 2: a token of tenant globex reads tenant acme's manifest,
// torrent and payload from a private catalog. Now 403 and no byte of
// them; metadata (needed to verify anything) and shared releases stay
// readable to every tenant.
func TestCrossTenantCatalogReadRefused(t *testing.T) {
	to := newTenantOrigin(t)
	globex := to.issue(t, token.Claims{Tenant: "globex", Site: "g1"})
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	acmeOps := to.issue(t, token.Claims{Role: token.RoleOperator, Tenant: "acme"})
	fleet := to.issue(t, token.Claims{Role: token.RoleOperator})
	acmeKeys := []string{"/releases/app-acme/1.0.json", "/torrents/app-acme/1.0.torrent", "/data/app-acme/1.0/file.bin"}
	for _, k := range acmeKeys {
		for who, tok := range map[string]string{"globex agent": globex, "no token": ""} {
			resp, body := get(t, "GET", to.srv.URL+k, bearer(tok))
			want := http.StatusForbidden
			if tok == "" {
				want = http.StatusUnauthorized
			}
			if resp.StatusCode != want || strings.Contains(body, acmePayload) || strings.Contains(body, to.ih["app-acme"]) {
				t.Errorf("%s GET %s: %s %q", who, k, resp.Status, body)
			}
		}
		// A token in the query (how web seeds carry it) is scoped the same.
		if resp, body := get(t, "GET", to.srv.URL+k+"?token="+globex, nil); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, acmePayload) {
			t.Errorf("globex ?token= GET %s: %s, want 401 (tokens only in the header)", k, resp.Status)
		}
		for who, tok := range map[string]string{"acme agent": acme, "acme operator": acmeOps, "fleet operator": fleet} {
			if resp, _ := get(t, "GET", to.srv.URL+k, bearer(tok)); resp.StatusCode != 200 {
				t.Errorf("%s GET %s: %s, want 200", who, k, resp.Status)
			}
		}
	}
	if _, body := get(t, "GET", to.srv.URL+"/data/app-acme/1.0/file.bin", bearer(acme)); body != acmePayload {
		t.Errorf("acme reads %q", body)
	}
	for _, k := range []string{"/metadata/timestamp.json", "/releases/shared/1.0.json", "/data/shared/1.0/file.bin"} {
		if resp, _ := get(t, "GET", to.srv.URL+k, bearer(globex)); resp.StatusCode != 200 {
			t.Errorf("globex GET %s: %s, want 200", k, resp.Status)
		}
	}
	// Releases the catalog does not list are nobody's.
	if resp, _ := get(t, "GET", to.srv.URL+"/data/app-acme/2.0/file.bin", bearer(globex)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("unknown version: %s", resp.Status)
	}
	if eg := to.o.Egress(); eg.WebSeed != 4*int64(len(acmePayload))+int64(len("payload of shared")) {
		t.Errorf("web seed egress %d: only the permitted reads may send payload", eg.WebSeed)
	}
}

// Attack 3: dashboard data, rollout API, per-agent API and /metrics
// answered without credentials. Now 401 with nothing in the body; agent
// tokens get 403; a tenant's operator sees its own agents only; /metrics
// needs a fleet operator.
func TestDashboardAPIsNeedOperatorTokens(t *testing.T) {
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	globex := to.issue(t, token.Claims{Tenant: "globex", Site: "g1"})
	if code, body := to.report(t, acme, agentReport("agent-acme-1", "acme", "s1", to.ih["app-acme"])); code != http.StatusNoContent {
		t.Fatalf("acme report: %d %s", code, body)
	}
	if code, body := to.report(t, globex, agentReport("agent-globex-1", "globex", "g1", to.ih["app-globex"])); code != http.StatusNoContent {
		t.Fatalf("globex report: %d %s", code, body)
	}
	secrets := []string{"agent-acme-1", "agent-globex-1", "s1", "g1", "app-acme", to.ih["app-acme"], to.ih["app-globex"]}
	paths := []string{"/api/v1/rollout", "/api/v1/agents/agent-acme-1?tenant=acme", "/api/v1/agents/agent-acme-1", "/metrics"}
	for _, p := range paths {
		for who, tok := range map[string]string{"nobody": "", "acme agent": acme, "garbage": "ss1.x.y"} {
			resp, body := get(t, "GET", to.srv.URL+p, bearer(tok))
			want := http.StatusForbidden
			if tok == "" {
				want = http.StatusUnauthorized
			}
			if resp.StatusCode != want {
				t.Errorf("%s GET %s: %s, want %d", who, p, resp.Status, want)
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("%s GET %s: body names %q: %q", who, p, s, body)
				}
			}
		}
	}
	// The dashboard page itself holds no data.
	resp, body := get(t, "GET", to.srv.URL+"/dashboard/", nil)
	if resp.StatusCode != 200 {
		t.Errorf("dashboard page: %s", resp.Status)
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("dashboard page names %q", s)
		}
	}

	acmeOps := to.issue(t, token.Claims{Role: token.RoleOperator, Tenant: "acme"})
	resp, body = get(t, "GET", to.srv.URL+"/api/v1/rollout", bearer(acmeOps))
	var ro rollout.View
	if err := json.Unmarshal([]byte(body), &ro); err != nil || resp.StatusCode != 200 {
		t.Fatalf("acme operator rollout: %s %v", resp.Status, err)
	}
	if ro.Agents.Known != 1 || len(ro.AgentList) != 1 || ro.AgentList[0].AgentID != "agent-acme-1" || strings.Contains(body, "globex") {
		t.Errorf("acme operator sees %+v", ro.AgentList)
	}
	if resp, _ := get(t, "GET", to.srv.URL+"/api/v1/agents/agent-acme-1", bearer(acmeOps)); resp.StatusCode != 200 {
		t.Errorf("acme operator, own agent: %s", resp.Status)
	}
	if resp, _ := get(t, "GET", to.srv.URL+"/api/v1/agents/agent-globex-1?tenant=globex", bearer(acmeOps)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("acme operator, globex agent: %s, want 404", resp.Status)
	}
	if resp, _ := get(t, "GET", to.srv.URL+"/metrics", bearer(acmeOps)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("tenant operator /metrics: %s, want 403", resp.Status)
	}
	fleet := to.issue(t, token.Claims{Role: token.RoleOperator})
	if resp, body := get(t, "GET", to.srv.URL+"/api/v1/rollout", bearer(fleet)); resp.StatusCode != 200 || !strings.Contains(body, "agent-globex-1") || !strings.Contains(body, "agent-acme-1") {
		t.Errorf("fleet operator rollout: %s", resp.Status)
	}
	if resp, body := get(t, "GET", to.srv.URL+"/metrics", bearer(fleet)); resp.StatusCode != 200 || !strings.Contains(body, "swarmship_origin_reports_total") {
		t.Errorf("fleet operator /metrics: %s", resp.Status)
	}
	// An operator token is no agent: it cannot report or announce.
	if code, _ := to.report(t, acmeOps, agentReport("agent-acme-9", "acme", "s1", to.ih["app-acme"])); code != http.StatusForbidden {
		t.Errorf("operator token reports: %d", code)
	}
	if code := to.announce(t, acmeOps, "acme", "s1", to.ih["app-acme"]); code != http.StatusForbidden {
		t.Errorf("operator token announces: %d", code)
	}
}

// Attack 4 with tokens: holders of other tenants' or sites' tokens reuse
// a real agent's id. Every such report is refused and the record stays.
func TestReportPoisoningWithTokensRefused(t *testing.T) {
	to := newTenantOrigin(t)
	real := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	if code, body := to.report(t, real, agentReport("a1", "acme", "s1", to.ih["app-acme"])); code != http.StatusNoContent {
		t.Fatalf("real report: %d %s", code, body)
	}
	fake := func() *report.Report {
		r := agentReport("a1", "acme", "s1", to.ih["app-acme"])
		r.Name, r.Releases[0].State, r.Subscriptions[0].Active = "EVIL", "failed", ""
		return r
	}
	cases := []struct {
		name string
		tok  string
		mod  func(*report.Report)
		want int
	}{
		{"other tenant's token", to.issue(t, token.Claims{Tenant: "globex"}), nil, http.StatusForbidden},
		{"other site's token", to.issue(t, token.Claims{Tenant: "acme", Site: "s2"}), nil, http.StatusForbidden},
		{"other site's token, own site in the report", to.issue(t, token.Claims{Tenant: "acme", Site: "s2"}), func(r *report.Report) { r.Site = "s2" }, http.StatusForbidden},
		{"tenant-wide token moving the agent", to.issue(t, token.Claims{Tenant: "acme"}), func(r *report.Report) { r.Site = "s2" }, http.StatusForbidden},
		{"token bound to another agent", to.issue(t, token.Claims{Tenant: "acme", Site: "s1", Agent: "a2"}), nil, http.StatusForbidden},
		{"no token", "", nil, http.StatusUnauthorized},
	}
	for _, c := range cases {
		r := fake()
		if c.mod != nil {
			c.mod(r)
		}
		if code, body := to.report(t, c.tok, r); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	// globex's own agent a1 is another record altogether.
	g := to.issue(t, token.Claims{Tenant: "globex", Site: "g1"})
	if code, body := to.report(t, g, agentReport("a1", "globex", "g1", to.ih["app-globex"])); code != http.StatusNoContent {
		t.Errorf("globex a1: %d %s", code, body)
	}
	fleet := to.issue(t, token.Claims{Role: token.RoleOperator})
	resp, body := get(t, "GET", to.srv.URL+"/api/v1/agents/a1?tenant=acme", bearer(fleet))
	var rec struct {
		Report report.Report `json:"report"`
	}
	if err := json.Unmarshal([]byte(body), &rec); err != nil || resp.StatusCode != 200 {
		t.Fatalf("record: %s %v", resp.Status, err)
	}
	if rec.Report.Name != "host-a1" || rec.Report.Site != "s1" || rec.Report.Releases[0].State != "active" {
		t.Errorf("acme/a1 was overwritten: %+v", rec.Report)
	}
	resp, body = get(t, "GET", to.srv.URL+"/api/v1/rollout", bearer(fleet))
	var ro rollout.View
	if err := json.Unmarshal([]byte(body), &ro); err != nil || resp.StatusCode != 200 || ro.Agents.Known != 2 {
		t.Errorf("%d agents known, want 2 (acme/a1, globex/a1)", ro.Agents.Known)
	}
}

// Item 8: a revoked token is refused on every endpoint, by id or by
// fingerprint, once the list file changes (no restart).
func TestRevokedTokenRefusedEverywhere(t *testing.T) {
	to := newTenantOrigin(t)
	agent := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	ops := to.issue(t, token.Claims{Role: token.RoleOperator})
	other := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	check := func(tok string, ok bool) {
		t.Helper()
		want := func(good int) int {
			if ok {
				return good
			}
			return http.StatusForbidden
		}
		if code := to.announce(t, tok, "acme", "s1", to.ih["app-acme"]); code != want(200) {
			t.Errorf("announce: %d, want %d", code, want(200))
		}
		if resp, body := get(t, "GET", to.srv.URL+"/data/app-acme/1.0/file.bin", bearer(tok)); resp.StatusCode != want(200) || !ok && strings.Contains(body, acmePayload) {
			t.Errorf("web seed: %s", resp.Status)
		}
		if resp, _ := get(t, "GET", to.srv.URL+"/releases/app-acme/1.0.json", bearer(tok)); resp.StatusCode != want(200) {
			t.Errorf("catalog: %s", resp.Status)
		}
		if code, _ := to.report(t, tok, agentReport("a1", "acme", "s1", to.ih["app-acme"])); code != want(http.StatusNoContent) {
			t.Errorf("report: %d", code)
		}
	}
	check(agent, true)
	if resp, _ := get(t, "GET", to.srv.URL+"/api/v1/rollout", bearer(ops)); resp.StatusCode != 200 {
		t.Fatalf("operator before revocation: %s", resp.Status)
	}
	var c token.Claims
	c, _ = token.Verify(to.key.Public().(ed25519.PublicKey), agent, time.Now())
	if err := token.Revoke(to.revoked, c.ID, "laptop stolen"); err != nil {
		t.Fatal(err)
	}
	// The operator token is revoked by fingerprint, as for tokens issued
	// before ids existed.
	if err := token.Revoke(to.revoked, token.Fingerprint(ops), ""); err != nil {
		t.Fatal(err)
	}
	// The origin notices the change by itself within a few seconds.
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if resp, _ := get(t, "GET", to.srv.URL+"/releases/app-acme/1.0.json", bearer(agent)); resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("revocation not applied: %s", resp.Status)
		}
		return nil
	})
	check(agent, false)
	for _, p := range []string{"/api/v1/rollout", "/metrics", "/api/v1/agents/a1?tenant=acme"} {
		if resp, body := get(t, "GET", to.srv.URL+p, bearer(ops)); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "a1") {
			t.Errorf("revoked operator GET %s: %s", p, resp.Status)
		}
	}
	check(other, true) // only the revoked tokens
	// A broken list keeps the previous one in force.
	os.WriteFile(to.revoked, []byte("not a valid id!\n"), 0o644)
	if err := to.o.ReloadRevocations(); err == nil {
		t.Error("a malformed list was accepted")
	}
	check(agent, false)
}

// A browser opens the dashboard with an operator token in the URL
// fragment: the page sends it as a bearer header and renders the tenant's
// agents; without it the page shows the error and no data.
func TestDashboardLoginByFragmentInBrowser(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	if code, body := to.report(t, acme, agentReport("agent-acme-1", "acme", "s1", to.ih["app-acme"])); code != http.StatusNoContent {
		t.Fatalf("report: %d %s", code, body)
	}
	ops := to.issue(t, token.Claims{Role: token.RoleOperator, Tenant: "acme"})
	dom := dumpDOM(t, chromium, to.srv.URL+"/dashboard/#token="+ops)
	if !strings.Contains(dom, `data-state="ready"`) || !strings.Contains(dom, "host-agent-acme-1") {
		t.Errorf("with the token the dashboard did not render the agent:\n%.3000s", dom)
	}
	dom = dumpDOM(t, chromium, to.srv.URL+"/dashboard/")
	if !strings.Contains(dom, `data-state="error"`) || strings.Contains(dom, "agent-acme-1") || !strings.Contains(dom, "operator token") {
		t.Errorf("without a token:\n%.3000s", dom)
	}
}

func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%.3000s", err, stderr.String())
	}
	return string(out)
}

// Only the origin's own seeder may announce as role=origin: an agent
// token claiming it is refused, and the seeder is admitted (it used to
// be refused in token mode for lack of a token).
func TestOnlyTheOriginSeederAnnouncesAsOrigin(t *testing.T) {
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	q := url.Values{}
	ih, err := hex.DecodeString(to.ih["app-acme"])
	if err != nil {
		t.Fatal(err)
	}
	q.Set("info_hash", string(ih))
	q.Set("peer_id", "-SS0001-abcdefghijkl")
	q.Set("port", "6881")
	q.Set("left", "0")
	q.Set("tenant", "acme")
	q.Set("site", "s1")
	q.Set("role", "origin")
	q.Set("token", acme)
	if resp, _ := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("agent token as role=origin: %s, want 401", resp.Status)
	}
	q.Del("token")
	if resp, _ := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), bearer(acme)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("agent token in the header as role=origin: %s, want 403", resp.Status)
	}
	if resp, _ := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), bearer("guess")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("guessed origin key: %s, want 403", resp.Status)
	}
	if resp, body := get(t, "GET", to.srv.URL+"/announce?"+q.Encode(), bearer(seeder.SeederKeyForTest(to.o))); resp.StatusCode != 200 || strings.Contains(body, "failure") {
		t.Errorf("the origin's seeder: %s %q", resp.Status, body)
	}
}

// TestSwarmViewTokenOnlyInHeader: announces and scrapes keep the token
// parameter for BitTorrent clients, but the swarm view (agents only, which
// send the header) ignores a token in its URL, where it would be logged.
func TestSwarmViewTokenOnlyInHeader(t *testing.T) {
	to := newTenantOrigin(t)
	acme := to.issue(t, token.Claims{Tenant: "acme", Site: "s1"})
	ih, err := hex.DecodeString(to.ih["app-acme"])
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"info_hash": {string(ih)}, "tenant": {"acme"}, "site": {"s1"}}
	if resp, _ := get(t, "GET", to.srv.URL+"/swarm?"+q.Encode(), bearer(acme)); resp.StatusCode != http.StatusOK {
		t.Fatalf("swarm view with the token in the header: %d, want 200", resp.StatusCode)
	}
	q.Set("token", acme)
	if resp, body := get(t, "GET", to.srv.URL+"/swarm?"+q.Encode(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("swarm view with the token only in its URL: %d %q, want 401", resp.StatusCode, body)
	}
	// The announce still takes it (aria2, qBittorrent: no headers).
	if c := to.announce(t, acme, "acme", "s1", to.ih["app-acme"]); c != http.StatusOK {
		t.Fatalf("announce with ?token=: %d, want 200", c)
	}
}

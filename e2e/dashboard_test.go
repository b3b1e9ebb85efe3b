package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
)

// TestObservability runs an origin and three agents to the end of a
// rollout, then checks what operators look at: the dashboard in a real
// browser, and /metrics of both roles against docs/metrics.md.
func TestObservability(t *testing.T) {
	ctx := context.Background()
	const originBudget = 1.5
	sw, err := localswarm.New(ctx, t.TempDir(), localswarm.OriginOptions{
		Configure: func(c *seeder.Config) { c.Reports.OriginBudget = originBudget },
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })

	payload := t.TempDir()
	rnd := rand.NewChaCha8([32]byte{7})
	for name, size := range map[string]int{"app.bin": 3 << 20, "assets.pak": 1<<20 + 4321, "README": 900} {
		b := make([]byte, size)
		rnd.Read(b)
		if err := os.WriteFile(filepath.Join(payload, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(payload)
	var paths []string
	for _, e := range entries {
		paths = append(paths, filepath.Join(payload, e.Name()))
	}
	if _, err := sw.Publish(ctx, "app", "1.0", paths, "stable"); err != nil {
		t.Fatal(err)
	}

	sites := []struct{ site, region string }{{"store-1", "eu"}, {"store-1", "eu"}, {"store-2", "us"}}
	var agents []*localswarm.RunningAgent
	for i, s := range sites {
		name := fmt.Sprintf("agent-%d", i+1)
		ra, err := sw.StartAgent(ctx, name, sw.AgentConfig(name, s.site, s.region, agent.Subscription{Name: "app", Channel: "stable"}))
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := localswarm.WaitActive(wctx, "app", "1.0", agents...); err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, ra := range agents {
		if localswarm.IsActive(ra.Agent, "app", "1.0") {
			active++
		}
	}

	// Reports arrive every 500ms; wait until the origin has seen every
	// agent with the release active and its loop (rollout.Tick, once a
	// second) has sampled the series.
	var rel rollout.Release
	deadline := time.Now().Add(20 * time.Second)
	for {
		ro := getRollout(t, sw.OriginURL)
		for _, r := range ro.Releases {
			if r.Release == "app@1.0" {
				rel = r
			}
		}
		if rel.Subscribed == len(agents) && rel.Active == active && len(rel.Series) > 0 && rel.Series[len(rel.Series)-1].Active == active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout never showed %d/%d active in its figures and series: %+v", active, len(agents), rel)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rel.Status != "complete" || rel.Progress != 1 || rel.Verified != 3 || len(rel.Stalled) != 0 {
		t.Errorf("rollout: status %s progress %v verified %d stalled %+v", rel.Status, rel.Progress, rel.Verified, rel.Stalled)
	}
	if len(rel.Sites) != 2 || rel.Sites[0].Name != "store-1" || rel.Sites[0].Active != 2 || rel.Sites[1].Active != 1 {
		t.Errorf("sites: %+v", rel.Sites)
	}
	if got := rel.Bytes.Peer + rel.Bytes.Origin + rel.Bytes.WebSeed; got < 3*rel.Size {
		t.Errorf("bytes by source %+v sum to %d, want at least 3 copies of %d", rel.Bytes, got, rel.Size)
	}
	if rel.Swarm.Seeders != 3 || rel.Swarm.Leechers != 0 {
		t.Errorf("swarm health: %+v", rel.Swarm)
	}

	t.Run("dashboard", func(t *testing.T) {
		chromium := testenv.RequireTool(t, "chromium")
		url := sw.OriginURL + "/dashboard"
		dom := runChromium(t, chromium, "--virtual-time-budget=5000", "--dump-dom", url)
		if !strings.Contains(dom, `data-state="ready"`) {
			t.Fatalf("dashboard never rendered data:\n%s", truncate(dom, 3000))
		}
		card := regexp.MustCompile(`<article\b[^>]*\bdata-release="app@1\.0"[^>]*>`).FindString(dom)
		if card == "" {
			t.Fatalf("no card for app@1.0 in the dashboard:\n%s", truncate(dom, 3000))
		}
		attrs := map[string]string{}
		for _, m := range regexp.MustCompile(`([\w-]+)="([^"]*)"`).FindAllStringSubmatch(card, -1) {
			attrs[m[1]] = m[2]
		}
		wantProgress := fmt.Sprint(100 * active / len(agents))
		for k, want := range map[string]string{
			"data-agents": fmt.Sprint(len(agents)), "data-active": fmt.Sprint(active),
			"data-progress": wantProgress, "data-status": "complete",
		} {
			if attrs[k] != want {
				t.Errorf("card %s = %q, want %q (agents say %d of %d active)", k, attrs[k], want, active, len(agents))
			}
		}
		// What people read, not only attributes.
		for _, s := range []string{">app@1.0</h2>", `data-testid="percent">` + wantProgress + `%<`, `data-site="store-2"`} {
			if !strings.Contains(dom, s) {
				t.Errorf("dashboard lacks %s", s)
			}
		}

		dir := os.Getenv("SWARMSHIP_ARTIFACTS")
		if dir == "" {
			dir = t.TempDir()
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		png := filepath.Join(dir, "dashboard.png")
		os.Remove(png)
		runChromium(t, chromium, "--virtual-time-budget=5000", "--hide-scrollbars", "--window-size=1280,900", "--screenshot="+png, url)
		st, err := os.Stat(png)
		if err != nil || st.Size() < 10<<10 {
			t.Fatalf("screenshot %s: %v (size %d)", png, err, sizeOf(st))
		}
		t.Logf("dashboard screenshot: %s", png)
	})

	t.Run("metrics", func(t *testing.T) {
		families := map[string]map[string]*dto.MetricFamily{
			"origin": parseMetrics(t, "origin", httpGet(t, sw.OriginURL+"/metrics")),
		}
		rec := httptest.NewRecorder()
		agents[0].Agent.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("agent /metrics: %d", rec.Code)
		}
		families["agent"] = parseMetrics(t, "agent", rec.Body.String())

		documented := documentedMetrics(t)
		if len(documented) < 15 {
			t.Fatalf("docs/metrics.md lists only %d metrics", len(documented))
		}
		for name, role := range documented {
			if families[role] == nil {
				t.Errorf("docs/metrics.md: %s has unknown role %q", name, role)
			} else if _, ok := families[role][name]; !ok {
				t.Errorf("docs/metrics.md lists %s for the %s, but its /metrics lacks it", name, role)
			}
		}
		for role, fams := range families {
			for name := range fams {
				if strings.HasPrefix(name, "swarmship_") && documented[name] == "" {
					t.Errorf("%s exports %s, which docs/metrics.md does not list", role, name)
				}
			}
		}

		o := families["origin"]
		if v := gauge(o["swarmship_rollout_agents"], map[string]string{"release": "app@1.0", "state": "active"}); v != float64(active) {
			t.Errorf(`swarmship_rollout_agents{release="app@1.0",state="active"} = %v, want %d`, v, active)
		}
		if v := gauge(o["swarmship_rollout_progress_ratio"], map[string]string{"release": "app@1.0"}); v != 1 {
			t.Errorf("progress ratio %v, want 1", v)
		}
		for _, kind := range []string{"stalled_rollout", "churn", "upload_capacity"} {
			if v := gauge(o["swarmship_alerts"], map[string]string{"kind": kind}); v != 0 {
				t.Errorf("alert %s fires on a healthy rollout", kind)
			}
		}
		// How many copies three agents of a 4 MiB release take from the
		// origin depends on who connects first (a loaded machine can push
		// it past the budget), so the origin_share alert must agree with
		// the figure rather than be assumed quiet. The rollout is complete:
		// the figure no longer moves.
		var copies float64
		for _, r := range getRollout(t, sw.OriginURL).Releases {
			if r.Release == "app@1.0" {
				copies = r.OriginCopies
			}
		}
		want := 0.0
		if copies > originBudget {
			want = 1
		}
		if v := gauge(o["swarmship_alerts"], map[string]string{"kind": "origin_share"}); v != want {
			t.Errorf("alert origin_share = %v with the origin at %.2f copies (budget %.2g), want %v", v, copies, originBudget, want)
		}
		t.Logf("origin sent %.2f copies of app@1.0 to 3 agents", copies)
		if v := counter(families["agent"]["swarmship_agent_reports_total"], map[string]string{"result": "ok"}); v < 1 {
			t.Errorf("agent sent %v reports", v)
		}
	})
}

func getRollout(t *testing.T, base string) rollout.View {
	t.Helper()
	var ro rollout.View
	if err := json.Unmarshal([]byte(httpGet(t, base+"/api/v1/rollout")), &ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// runChromium runs Debian's headless chromium and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, truncate(stderr.String(), 4000))
	}
	return stdout.String()
}

func parseMetrics(t *testing.T, role, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", role, err)
	}
	return fams
}

// documentedMetrics reads the metric tables of docs/metrics.md: rows whose
// first cell is a `swarmship_…` name, with the role in the fourth column.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 6 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.HasPrefix(name, "swarmship_") {
			continue
		}
		out[name] = strings.TrimSpace(cells[4])
	}
	return out
}

func find(f *dto.MetricFamily, labels map[string]string) *dto.Metric {
	for _, m := range f.GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(labels) {
			return m
		}
	}
	return nil
}

func gauge(f *dto.MetricFamily, labels map[string]string) float64 {
	if m := find(f, labels); m != nil {
		return m.GetGauge().GetValue()
	}
	return -1
}

func counter(f *dto.MetricFamily, labels map[string]string) float64 {
	if m := find(f, labels); m != nil {
		return m.GetCounter().GetValue()
	}
	return -1
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

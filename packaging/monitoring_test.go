package packaging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// ruleFile is the Prometheus rule file format, as much of it as
// alerts.yml uses; unknown keys fail the strict decoding.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exprUse is one PromQL expression of the monitoring files and where it is.
type exprUse struct {
	where, expr string
	// templates are the annotation texts of an alert ({{ $labels.X }}).
	templates []string
}

// families are the metric families of each role's /metrics.
type families map[string]map[string]*dto.MetricFamily

func readRules(t *testing.T) (ruleFile, []exprUse) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("monitoring", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var uses []exprUse
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			var tmpl []string
			for _, v := range r.Annotations {
				tmpl = append(tmpl, v)
			}
			tmpl = append(tmpl, r.Alert)
			uses = append(uses, exprUse{where: "alerts.yml " + r.Alert, expr: r.Expr, templates: tmpl})
		}
	}
	return rf, uses
}

// readDashboard returns the dashboard and every query in it: panel
// targets' expr and template variables' query/definition.
func readDashboard(t *testing.T) (map[string]any, []exprUse) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var uses []exprUse
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition" || (k == "query" && strings.Contains(s, "swarmship_"))) {
					uses = append(uses, exprUse{where: "grafana-dashboard.json " + path + "." + k, expr: s})
					continue
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", d)
	return d, uses
}

var (
	selectorRE = regexp.MustCompile(`\b(swarmship_[a-zA-Z0-9_]+)\b\s*(\{[^}]*\})?`)
	matchersRE = regexp.MustCompile(`^\s*(?:[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,\s*|$))*$`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	callRE     = regexp.MustCompile(`\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(`)
	templateRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	grafanaVar = regexp.MustCompile(`\$__(rate_interval|interval|range)`)
)

// promqlCalls are the functions, aggregations and keywords followed by a
// parenthesis that the files may use; a misspelt one is caught.
var promqlCalls = []string{"sum", "max", "min", "avg", "count", "rate", "irate", "increase",
	"delta", "histogram_quantile", "time", "vector", "label_values", "clamp_min", "topk",
	"by", "without", "on", "ignoring", "group_left", "group_right", "unless", "and", "or", "absent"}

// exprProblems checks one expression: brackets and quotes balanced, range
// durations valid, label matchers well formed, functions known, and every
// swarmship_ metric listed in docs/metrics.md and exported by its role
// with the labels the expression and the alert's templates name.
func exprProblems(u exprUse, documented map[string]string, fams families) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, u.where+": "+fmt.Sprintf(format, args...))
	}
	expr := grafanaVar.ReplaceAllString(u.expr, "5m")
	if strings.TrimSpace(expr) == "" {
		bad("empty expression")
		return out
	}
	// Brackets and quotes, outside string literals; range durations.
	var stack []rune
	inStr, esc := false, false
	rangeStart := -1
	for i, c := range expr {
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, c)
			if c == '[' {
				rangeStart = i + 1
			}
		case c == ')' || c == '}' || c == ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				bad("unbalanced %q at offset %d", c, i)
				return out
			}
			stack = stack[:len(stack)-1]
			if c == ']' {
				for _, d := range strings.Split(expr[rangeStart:i], ":") {
					if d == "" {
						continue // subquery with the default step
					}
					if _, err := model.ParseDuration(strings.TrimSpace(d)); err != nil {
						bad("range [%s]: %v", expr[rangeStart:i], err)
					}
				}
			}
		}
	}
	if inStr || len(stack) > 0 {
		bad("unclosed string or bracket")
		return out
	}
	for _, m := range callRE.FindAllStringSubmatch(expr, -1) {
		if !slices.Contains(promqlCalls, m[1]) {
			bad("unknown function or keyword %s(", m[1])
		}
	}

	allowed := map[string]bool{"instance": true, "job": true}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		name, matchers := m[1], m[2]
		base := name
		role, ok := documented[name]
		if !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, found := strings.CutSuffix(name, suf); found && documented[b] != "" {
					base, role, ok = b, documented[b], true
				}
			}
		}
		if !ok {
			bad("metric %s is not in docs/metrics.md", name)
			continue
		}
		f := fams[role][base]
		if f == nil {
			bad("metric %s is not exported by the %s's /metrics", base, role)
			continue
		}
		if base != name && f.GetType() != dto.MetricType_HISTOGRAM && f.GetType() != dto.MetricType_SUMMARY {
			bad("metric %s: %s is a %s, not a histogram", name, base, f.GetType())
		}
		labels := map[string]bool{"instance": true, "job": true}
		if base != name && strings.HasSuffix(name, "_bucket") {
			labels["le"] = true
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		for l := range labels {
			allowed[l] = true
		}
		if matchers == "" {
			continue
		}
		inner := matchers[1 : len(matchers)-1]
		if !matchersRE.MatchString(inner) {
			bad("label matchers %s do not parse", matchers)
			continue
		}
		for _, lm := range matcherRE.FindAllStringSubmatch(inner, -1) {
			if !labels[lm[1]] {
				bad("%s has no label %s", base, lm[1])
			}
		}
	}
	for _, tmpl := range u.templates {
		for _, m := range templateRE.FindAllStringSubmatch(tmpl, -1) {
			if !allowed[m[1]] {
				bad("template names $labels.%s, which no metric of the expression has", m[1])
			}
		}
	}
	return out
}

// documentedMetrics reads the metric tables of docs/metrics.md: rows whose
// first cell is a `swarmship_…` name, with the role in the fourth column
// (the relay table, exported only with relay.mode on, has no role column
// and is left out, as in e2e's TestObservability).
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
		if strings.HasPrefix(name, "swarmship_") {
			out[name] = strings.TrimSpace(cells[4])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 15 {
		t.Fatalf("docs/metrics.md lists only %d metrics", len(out))
	}
	return out
}

func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// TestMonitoringFilesParse checks the structure of the rule file and the
// dashboard without a running origin, and runs promtool when it is there
// (the Debian prometheus package is too large for CI).
func TestMonitoringFilesParse(t *testing.T) {
	rf, _ := readRules(t)
	names := map[string]bool{}
	n := 0
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("alert %q: empty or repeated name", r.Alert)
			}
			names[r.Alert] = true
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are required", r.Alert)
			}
		}
	}
	if n < 10 {
		t.Errorf("alerts.yml has %d rules", n)
	}

	d, uses := readDashboard(t)
	if d["uid"] == "" || d["title"] == "" || d["schemaVersion"] == nil {
		t.Error("dashboard: uid, title and schemaVersion are required")
	}
	type rect struct{ x, y, w, h float64 }
	var placed []rect
	ids := map[float64]bool{}
	panels, _ := d["panels"].([]any)
	for i, p := range panels {
		p, _ := p.(map[string]any)
		id, _ := p["id"].(float64)
		if id == 0 || ids[id] {
			t.Errorf("panel %d: id %v missing or repeated", i, p["id"])
		}
		ids[id] = true
		gp, _ := p["gridPos"].(map[string]any)
		r := rect{gp["x"].(float64), gp["y"].(float64), gp["w"].(float64), gp["h"].(float64)}
		if r.w <= 0 || r.h <= 0 || r.x+r.w > 24 {
			t.Errorf("panel %v: gridPos %+v outside the 24-column grid", p["title"], r)
		}
		for _, q := range placed {
			if r.x < q.x+q.w && q.x < r.x+r.w && r.y < q.y+q.h && q.y < r.y+r.h {
				t.Errorf("panel %v overlaps another at %+v", p["title"], q)
			}
		}
		placed = append(placed, r)
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %v has no query", p["title"])
		}
		for _, tg := range targets {
			tg, _ := tg.(map[string]any)
			if tg["refId"] == "" || tg["expr"] == "" {
				t.Errorf("panel %v: a target needs refId and expr", p["title"])
			}
		}
		if ds, _ := p["datasource"].(map[string]any); ds["uid"] != "${DS_PROMETHEUS}" {
			t.Errorf("panel %v: datasource %v, want the ${DS_PROMETHEUS} input", p["title"], p["datasource"])
		}
	}
	if len(uses) < 20 {
		t.Errorf("dashboard has %d queries", len(uses))
	}

	if promtool := testenv.FindTool("promtool"); promtool != "" {
		out, err := exec.Command(promtool, "check", "rules", filepath.Join("monitoring", "alerts.yml")).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
		t.Logf("promtool: %s", out)
		// The dashboard's queries, as recording rules, Grafana's
		// variables replaced by values.
		var rec strings.Builder
		rec.WriteString("groups:\n- name: dashboard\n  rules:\n")
		for i, u := range uses {
			if strings.HasPrefix(u.expr, "label_values(") {
				continue // Grafana's, not PromQL
			}
			e := strings.ReplaceAll(grafanaVar.ReplaceAllString(u.expr, "5m"), "$release", ".*")
			q, _ := json.Marshal(e)
			fmt.Fprintf(&rec, "  - record: dashboard:query%d\n    expr: %s\n", i, q)
		}
		p := filepath.Join(t.TempDir(), "dashboard-rules.yml")
		if err := os.WriteFile(p, []byte(rec.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: alerts.yml checked by parsing only")
	}
}

// TestCheckerCatchesMistakes shows that the metric check fails a renamed
// metric or label, a misspelt function and a broken bracket.
func TestCheckerCatchesMistakes(t *testing.T) {
	documented := map[string]string{"swarmship_agent_peers": "agent", "swarmship_alerts": "origin",
		"swarmship_tracker_announce_duration_seconds": "origin"}
	fams := families{
		"agent": parseMetrics(t, "# TYPE swarmship_agent_peers gauge\nswarmship_agent_peers 3\n"),
		"origin": parseMetrics(t, "# TYPE swarmship_alerts gauge\nswarmship_alerts{kind=\"churn\"} 0\n"+
			"# TYPE swarmship_tracker_announce_duration_seconds histogram\n"+
			"swarmship_tracker_announce_duration_seconds_bucket{le=\"+Inf\"} 1\n"+
			"swarmship_tracker_announce_duration_seconds_sum 0.001\nswarmship_tracker_announce_duration_seconds_count 1\n"),
	}
	good := []exprUse{
		{where: "ok1", expr: `sum(swarmship_agent_peers) > 0`},
		{where: "ok2", expr: `swarmship_alerts{kind="churn"} == 1`, templates: []string{"{{ $labels.kind }} on {{ $labels.instance }}"}},
		{where: "ok3", expr: `histogram_quantile(0.99, sum by (le) (rate(swarmship_tracker_announce_duration_seconds_bucket[$__rate_interval])))`},
	}
	for _, u := range good {
		if p := exprProblems(u, documented, fams); len(p) > 0 {
			t.Errorf("false alarm: %v", p)
		}
	}
	for _, u := range []exprUse{
		{where: "renamed metric", expr: `swarmship_agent_peer_count > 0`},
		{where: "undocumented but exported", expr: `swarmship_agent_releases > 0`},
		{where: "documented, not exported", expr: `swarmship_agent_peers`},
		{where: "renamed label", expr: `swarmship_alerts{type="churn"} == 1`},
		{where: "template label", expr: `swarmship_alerts == 1`, templates: []string{"{{ $labels.release }}"}},
		{where: "function", expr: `rat(swarmship_agent_peers[5m])`},
		{where: "bracket", expr: `sum(rate(swarmship_agent_peers[5m])`},
		{where: "range", expr: `rate(swarmship_agent_peers[5x])`},
		{where: "matcher", expr: `swarmship_alerts{kind=churn}`},
		{where: "not a histogram", expr: `swarmship_agent_peers_bucket`},
	} {
		f := fams
		if u.where == "documented, not exported" {
			f = families{"agent": {}, "origin": fams["origin"]}
		}
		if p := exprProblems(u, documented, f); len(p) == 0 {
			t.Errorf("%s: %q passed the check", u.where, u.expr)
		}
	}
}

// TestMonitoringMetricsExist scrapes a real origin and agent after a
// rollout and checks every metric that alerts.yml and the dashboard use:
// listed in docs/metrics.md, exported by its role's /metrics, with the
// labels the queries name. Renaming a metric or a label fails it.
func TestMonitoringMetricsExist(t *testing.T) {
	documented := documentedMetrics(t)
	_, uses := readRules(t)
	_, dash := readDashboard(t)
	uses = append(uses, dash...)

	// Which names the files use, to wait until a scrape has them all.
	want := map[string]bool{}
	for _, u := range uses {
		for _, m := range selectorRE.FindAllStringSubmatch(u.expr, -1) {
			want[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")] = true
		}
	}
	if len(want) < 25 {
		t.Fatalf("the monitoring files use only %d metrics", len(want))
	}

	ctx := context.Background()
	sw, err := localswarm.New(ctx, t.TempDir(), localswarm.OriginOptions{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	payload := filepath.Join(t.TempDir(), "app.bin")
	b := make([]byte, 1<<20+123)
	rand.NewChaCha8([32]byte{5}).Read(b)
	if err := os.WriteFile(payload, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Publish(ctx, "app", "1.0", []string{payload}, "stable"); err != nil {
		t.Fatal(err)
	}
	ra, err := sw.StartAgent(ctx, "agent-1", sw.AgentConfig("agent-1", "store-1", "eu", agent.Subscription{Name: "app", Channel: "stable"}))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := localswarm.WaitActive(wctx, "app", "1.0", ra); err != nil {
		t.Fatal(err)
	}

	// Reports arrive every 500 ms and the origin's rollout tick runs once a
	// second: scrape until every used name is there (or a minute passed),
	// then judge the last scrape.
	var fams families
	deadline := time.Now().Add(time.Minute)
	for {
		fams = families{"origin": parseMetrics(t, httpGet(t, sw.OriginURL+"/metrics"))}
		rec := httptest.NewRecorder()
		ra.Agent.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("agent /metrics: %d", rec.Code)
		}
		fams["agent"] = parseMetrics(t, rec.Body.String())
		missing := 0
		for name := range want {
			if role := documented[name]; role != "" && fams[role][name] == nil {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, u := range uses {
		for _, p := range exprProblems(u, documented, fams) {
			t.Error(p)
		}
	}
	t.Logf("checked %d expressions using %d metrics", len(uses), len(want))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/policy"
)

// fakeClock is a settable clock for schedules.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

const storesPolicy = `name: stores
assign: {labels: [stores]}
rates:
  profiles:
    - {name: day, down: 2Mbit, up: 1Mbit}
    - {name: night, down: 80Mbit, up: 40Mbit}
  schedule:
    - {window: "Mon-Sun 08:00-20:00", name: day}
  default: night
`

type fleetFixture struct {
	dir   string
	store *catalog.DirStore
	keys  catalog.Keys
	root  string
	clock *fakeClock
}

func newFleetFixture(t *testing.T) *fleetFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "catalog")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, keys, root := storetest.InitCatalog(t, store)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	// Monday 19:59 UTC: one minute before the day profile ends.
	return &fleetFixture{dir: dir, store: store, keys: keys, root: rootFile,
		clock: &fakeClock{t: time.Date(2026, 12, 7, 19, 59, 0, 0, time.UTC)}}
}

func (f *fleetFixture) publish(t *testing.T, doc string) {
	t.Helper()
	if err := catalog.PublishPolicy(t.Context(), f.store, f.keys, catalog.UpdateOptions{}, "stores", []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// agent starts an in-process agent (origin-only: no peers needed) on
// cacheDir with the given labels and local rates.
func (f *fleetFixture) agent(t *testing.T, cacheDir string, labels []string, rates RatesConfig) *Agent {
	t.Helper()
	cfg := &Config{
		Catalog: CatalogConfig{URL: f.dir, Root: f.root}, CacheDir: cacheDir, Site: "s" + filepath.Base(cacheDir),
		Labels: labels, Rates: rates, Mode: policy.ModeOriginOnly, Status: StatusConfig{Addr: "off"},
		Subscriptions: []Subscription{{Name: "app"}},
		Swarm:         SwarmConfig{ListenHost: "127.0.0.1"},
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// pass is one refresh and policy pass, as Run does.
func pass(t *testing.T, a *Agent, now time.Time) {
	t.Helper()
	if err := a.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.applyPolicy(now)
}

func downLimit(a *Agent) rate.Limit { return a.down.Limit() }

func fleetStatus(a *Agent) *FleetPolicyStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pol.status.Fleet
}

// A schedule assigned centrally to label stores reaches every agent with
// that label, switches their limiters at the window edge without a
// restart, loses to a stricter local limit, and a bad new version is
// refused whole while the last good one stays in force, across restarts.
func TestFleetPolicyReachesLabelledAgents(t *testing.T) {
	f := newFleetFixture(t)
	f.publish(t, storesPolicy)
	local := RatesConfig{Profiles: []policy.RateProfile{{Name: "cap", Down: 125_000}}, Default: "cap"} // 1Mbit
	base := t.TempDir()
	var stores []*Agent
	for i := range 10 {
		var r RatesConfig
		if i == 0 {
			r = local
		}
		stores = append(stores, f.agent(t, filepath.Join(base, fmt.Sprint(i)), []string{"kiosk", "stores"}, r))
	}
	other := f.agent(t, filepath.Join(base, "other"), []string{"office"}, RatesConfig{})

	day, night := f.clock.Now(), f.clock.Now().Add(time.Minute)
	for i, a := range append(stores, other) {
		pass(t, a, day)
		want := rate.Limit(250_000) // 2Mbit, central day profile
		switch {
		case i == 0:
			want = 125_000 // the stricter local 1Mbit
		case a == other:
			want = rate.Inf
		}
		if got := downLimit(a); got != want {
			t.Errorf("agent %d at day: down limit %v, want %v", i, got, want)
		}
	}
	if fs := fleetStatus(stores[1]); fs == nil || strings.Join(fs.Documents, ",") != "stores" || fs.Sources["down"] != "policy:stores" {
		t.Fatalf("status of a store agent: %+v", fs)
	}
	if fs := fleetStatus(stores[0]); fs == nil || fs.Sources["down"] != policy.OriginLocal || fs.Sources["up"] != "policy:stores" {
		t.Fatalf("status of the agent with a local cap: %+v", fs)
	}
	if next := stores[1].pol.status.NextEdge; !next.Equal(night) {
		t.Errorf("next window edge %v, want %v", next, night)
	}

	// The window edge: the next pass (no refresh, no restart) applies night.
	f.clock.Set(night)
	for i, a := range stores {
		a.applyPolicy(f.clock.Now())
		want := rate.Limit(10_000_000) // 80Mbit
		if i == 0 {
			want = 125_000
		}
		if got := downLimit(a); got != want {
			t.Errorf("agent %d at night: down limit %v, want %v", i, got, want)
		}
	}

	// A broken version is refused whole; the last good one stays.
	f.publish(t, strings.Replace(storesPolicy, "default: night", "default: evening", 1))
	for i, a := range stores {
		pass(t, a, night)
		if got := downLimit(a); i > 0 && got != 10_000_000 {
			t.Errorf("agent %d after a bad document: down limit %v, want the last good 10000000", i, got)
		}
		fs := fleetStatus(a)
		if fs == nil || len(fs.Refused) != 1 || !fs.Refused[0].KeptLast || !strings.Contains(fs.Refused[0].Error, "evening") {
			t.Fatalf("agent %d status after a bad document: %+v", i, fs)
		}
	}

	// The last good document survives a restart without the catalog.
	a := stores[3]
	cacheDir := a.cfg.CacheDir
	a.Close()
	os.RemoveAll(f.dir) // the catalog is gone
	b := f.agent(t, cacheDir, []string{"stores"}, RatesConfig{})
	b.applyPolicy(night)
	if got := downLimit(b); got != 10_000_000 {
		t.Errorf("restarted agent without catalog: down limit %v, want the last good 10000000", got)
	}
}

// A running agent picks up a new document at its next refresh and
// changes its limiter without a restart.
func TestFleetPolicyLiveInRun(t *testing.T) {
	f := newFleetFixture(t)
	f.clock.Set(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)) // day
	a := f.agent(t, filepath.Join(t.TempDir(), "live"), []string{"stores"}, RatesConfig{})
	a.cfg.RefreshInterval = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitLimit := func(want rate.Limit) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for downLimit(a) != want {
			if time.Now().After(deadline) {
				t.Fatalf("down limit %v, want %v within 60 s", downLimit(a), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLimit(rate.Inf)
	f.publish(t, storesPolicy)
	waitLimit(250_000)
	f.publish(t, strings.Replace(storesPolicy, "down: 2Mbit", "down: 4Mbit", 1))
	waitLimit(500_000)
}

// Central download windows narrow a subscription's, urgent or not.
func TestFleetPolicyWindowsGateDownloads(t *testing.T) {
	f := newFleetFixture(t)
	f.publish(t, "name: stores\nassign: {labels: [stores]}\nwindows: [\"Mon-Fri 20:00-06:00\"]\n")
	a := f.agent(t, filepath.Join(t.TempDir(), "w"), []string{"stores"}, RatesConfig{})
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	pass(t, a, noon)
	for _, sub := range []Subscription{{Name: "app"}, {Name: "app", Urgent: true}} {
		if ok, why := a.mayDownload(sub, noon); ok || !strings.Contains(why, "policy:stores") {
			t.Errorf("urgent=%v at noon: may download %v (%s), want refused naming the document", sub.Urgent, ok, why)
		}
		if ok, why := a.mayDownload(sub, noon.Add(9*time.Hour)); !ok {
			t.Errorf("urgent=%v at 21:00: refused (%s)", sub.Urgent, why)
		}
	}
	if fs := fleetStatus(a); fs == nil || strings.Join(fs.Windows, ",") != "Mon-Fri 20:00-06:00" || fs.Sources["windows"] != "policy:stores" {
		t.Errorf("status: %+v", fs)
	}
}

// A stricter central mode stops uploads at once and decides peer
// connections from the next start on; the local mode stays for merging.
func TestFleetPolicyModeAtRestart(t *testing.T) {
	f := newFleetFixture(t)
	f.publish(t, "name: stores\nassign: {labels: [stores]}\nmode: offline\n")
	cacheDir := filepath.Join(t.TempDir(), "m")
	a := f.agent(t, cacheDir, []string{"stores"}, RatesConfig{})
	now := f.clock.Now()
	pass(t, a, now)
	a.mu.Lock()
	st := a.pol.status
	a.mu.Unlock()
	if st.Mode != policy.ModeOffline || st.Upload || st.Fleet == nil || st.Fleet.Restart == "" || st.Fleet.Sources["mode"] != "policy:stores" {
		t.Fatalf("status before restart: %+v %+v", st, st.Fleet)
	}
	a.Close()
	b := f.agent(t, cacheDir, []string{"stores"}, RatesConfig{})
	if b.cfg.Mode != policy.ModeOffline || b.localMode != policy.ModeOriginOnly {
		t.Fatalf("after restart: started in %s, local %s", b.cfg.Mode, b.localMode)
	}
	pass(t, b, now)
	if fs := fleetStatus(b); fs == nil || fs.Restart != "" {
		t.Errorf("status after restart: %+v", fs)
	}
	// The document goes: the local mode applies again (uploads stay off
	// in origin-only; peers come back at the next start).
	if _, err := catalog.Update(t.Context(), f.store, f.keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.RemovePolicy("stores") }); err != nil {
		t.Fatal(err)
	}
	pass(t, b, now)
	b.mu.Lock()
	mode := b.pol.status.Mode
	b.mu.Unlock()
	if mode != policy.ModeOriginOnly {
		t.Errorf("mode after rm: %s", mode)
	}
}

// The fleet part of a report stays within the origin's limits however
// many documents and how long the errors.
func TestFleetReportWithinLimits(t *testing.T) {
	fs := &FleetPolicyStatus{Sources: map[string]string{"down": "policy:" + strings.Repeat("n", 300)}}
	for i := range 40 {
		fs.Documents = append(fs.Documents, fmt.Sprintf("doc-%d-%s", i, strings.Repeat("x", 200)))
		fs.Refused = append(fs.Refused, policy.FleetRefusal{Name: fmt.Sprint(i), Error: strings.Repeat("e", 100)})
	}
	r := report.Report{V: report.Version, AgentID: "a1", IntervalSeconds: 30}
	fleetReport(&r.Policy, fs)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(r.Policy.PolicyDocs) != report.MaxPolicyDocs || r.Policy.PolicyError == "" {
		t.Errorf("docs %d, error %q", len(r.Policy.PolicyDocs), r.Policy.PolicyError)
	}
}

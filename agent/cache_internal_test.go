package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/internal/release"
)

// The cache type owns the directory layout: current/ switches by rename,
// orphans are the release directories without a record, and remove takes
// the payload and the kept metadata.
func TestReleaseCache(t *testing.T) {
	c := releaseCache{dir: t.TempDir()}
	for _, d := range []string{"current", "state/releases/app", "releases/app/1.0", "releases/app/2.0", "releases/tool/0.1"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if v := c.activeVersion("app"); v != "" {
		t.Fatalf("active version %q before any switch", v)
	}
	for _, v := range []string{"1.0", "2.0"} {
		if err := c.switchCurrent("app", v); err != nil {
			t.Fatal(err)
		}
		if got := c.activeVersion("app"); got != v {
			t.Fatalf("active version %q after switching to %s", got, v)
		}
	}
	if _, err := os.Stat(c.currentLink("app")); err != nil {
		t.Fatalf("current/app does not resolve: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(c.dir, "current", "*.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("switches left temporary links: %v", leftovers)
	}

	got := c.unrecorded(map[string]bool{"app@2.0": true})
	want := []release.Ref{{Name: "app", Version: "1.0"}, {Name: "tool", Version: "0.1"}}
	if !slices.Equal(got, want) {
		t.Errorf("unrecorded = %v, want %v", got, want)
	}

	for _, p := range []string{c.manifestPath("app", "1.0"), c.torrentPath("app", "1.0")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.remove("app", "1.0"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.releaseDir("app", "1.0"), c.manifestPath("app", "1.0"), c.torrentPath("app", "1.0")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after remove: %v", p, err)
		}
	}
}

// A failed state write is returned and logged once while writes keep
// failing, and the recovery is logged once.
func TestSaveRecordReportsFailures(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(t.TempDir(), "agent.db")
	st, _, err := openState(path, log)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{state: st, log: log}
	rec := &ReleaseState{Name: "app", Version: "1.0", Phase: PhaseQueued}
	if err := a.saveRecord(rec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for range 3 {
		if err := a.saveRecord(rec); err == nil || !strings.Contains(err.Error(), "app@1.0") {
			t.Fatalf("write to a closed database: err %v, want one naming app@1.0", err)
		}
	}
	if n := strings.Count(logs.String(), "cannot save release state"); n != 1 {
		t.Errorf("%d failure lines for 3 failed writes, want 1:\n%s", n, logs.String())
	}
	if a.state, _, err = openState(path, log); err != nil {
		t.Fatal(err)
	}
	defer a.state.Close()
	rec.Phase = PhaseDownloading
	if err := a.saveRecord(rec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "release state saved again") {
		t.Errorf("no recovery line:\n%s", logs.String())
	}
	if got, ok, err := a.state.Get("app@1.0"); err != nil || !ok || got.Phase != PhaseDownloading {
		t.Errorf("record after recovery: %+v %v %v", got, ok, err)
	}
}

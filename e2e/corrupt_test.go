package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// A damaged state database or piece-completion database must never stop
// the agent, nor cost a release that verifies: for each database and
// each kind of damage, an agent restarted on a copy of a stopped agent's
// cache (active app 2.0, rollback copy app 1.0, pinned tool 1.0) keeps
// current/ readable throughout, keeps every release, downloads nothing,
// and says in status and log what it did with which file.
func TestAgentRecoversCorruptStateFiles(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	small := map[string]int64{"app.bin": 1<<20 + 333, "VERSION": 10}
	m1 := publish(t, sw, "app", "1.0", 50, small, "stable")
	mt := publish(t, sw, "tool", "1.0", 51, map[string]int64{"tool.bin": 300 << 10})
	subs := []agent.Subscription{{Name: "app", Channel: "stable"}, {Name: "tool", Version: "1.0"}}
	base := sw.AgentConfig("base", "site-1", "eu", subs...)
	ra, err := sw.StartAgent(context.Background(), "base", base)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	waitActive(t, "tool", "1.0", 60*time.Second, ra)
	m2 := publish(t, sw, "app", "2.0", 52, small, "stable")
	waitActive(t, "app", "2.0", 60*time.Second, ra)
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]agent.Phase{"app@1.0": agent.PhaseVerified, "app@2.0": agent.PhaseActive, "tool@1.0": agent.PhaseActive}
	manifests := map[string]*catalog.Manifest{"app@1.0": m1, "app@2.0": m2, "tool@1.0": mt}

	files := map[string]string{"state": filepath.Join("state", "agent.db"), "completion": filepath.Join("state", ".torrent.bolt.db")}
	// The whole state directory lost (the databases and the cached
	// manifests and torrents): releases are checked against the signed
	// catalog instead.
	stateDirLost := []struct {
		Name string
		Do   func(t *testing.T, path string)
	}{{"removed", func(t *testing.T, path string) {
		if err := os.RemoveAll(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
	}}}
	files["statedir"] = files["state"]
	for _, db := range []string{"state", "completion", "statedir"} {
		damages := testenv.BoltDamages
		if db == "statedir" {
			damages = stateDirLost
		}
		for _, c := range damages {
			t.Run(db+"/"+c.Name, func(t *testing.T) {
				name := strings.ReplaceAll(db+"-"+c.Name, " ", "-")
				cfg := sw.AgentConfig(name, "site-1", "eu", subs...)
				copyTree(t, base.CacheDir, cfg.CacheDir)
				path := filepath.Join(cfg.CacheDir, files[db])
				c.Do(t, path)

				// current/ must serve 2.0 while the agent starts and recovers.
				var reads, bad atomic.Int64
				var firstBad atomic.Value
				stop := make(chan struct{})
				var wg sync.WaitGroup
				cacheDir := cfg.CacheDir // StartAgentWith finishes cfg in place
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := checkCurrent(cacheDir, m2); err != nil {
							bad.Add(1)
							firstBad.CompareAndSwap(nil, err.Error())
						}
						reads.Add(1)
						time.Sleep(2 * time.Millisecond)
					}
				})
				egress := sw.Origin.Egress().Total()
				logs := &testenv.SyncBuffer{}
				ra, err := sw.StartAgentWith(context.Background(), name, cfg, agent.Options{
					Logger: slog.New(slog.NewTextHandler(logs, nil)),
				})
				if err != nil {
					close(stop)
					t.Fatalf("agent did not start: %v", err)
				}
				if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool { return settled(ra.Agent.Status(), want) }) {
					close(stop)
					t.Fatalf("agent did not settle; status %+v", ra.Agent.Status())
				}
				st := ra.Agent.Status()
				if err := ra.Stop(); err != nil {
					t.Error(err)
				}
				close(stop)
				wg.Wait()
				if bad.Load() > 0 || reads.Load() == 0 {
					t.Errorf("current/app failed %d of %d reads during the restart; first: %v", bad.Load(), reads.Load(), firstBad.Load())
				}
				for key, m := range manifests {
					dir := filepath.Join(cfg.CacheDir, "releases", m.Name, m.Version)
					if err := verifyDir(dir, m); err != nil {
						t.Errorf("%s: %v", key, err)
					}
				}
				if d := sw.Origin.Egress().Total() - egress; d != 0 {
					t.Errorf("origin sent %d payload bytes during the recovery, want 0", d)
				}

				if db == "statedir" {
					checkReadopted(t, cfg.CacheDir, st, manifests)
					return
				}
				// Status and log name the file and what was done.
				var rec *agent.Recovery
				for i := range st.Recovered {
					if st.Recovered[i].File == path {
						rec = &st.Recovered[i]
					}
				}
				if rec == nil {
					t.Fatalf("status does not name %s: %+v", path, st.Recovered)
				}
				t.Logf("status: %+v", st.Recovered)
				if c.Name != "truncated to 0" {
					if rec.MovedTo == "" || !strings.HasPrefix(rec.MovedTo, path+".corrupt-") {
						t.Errorf("corrupt file not moved aside: %+v", rec)
					} else if _, err := os.Stat(rec.MovedTo); err != nil {
						t.Errorf("moved-aside file: %v", err)
					}
				}
				out := logs.String()
				if !strings.Contains(out, path) || (rec.MovedTo != "" && !strings.Contains(out, rec.MovedTo)) {
					t.Errorf("log does not name %s and where it went:\n%s", path, out)
				}
				if !strings.Contains(out, "level=WARN") && !strings.Contains(out, "level=ERROR") {
					t.Errorf("recovery not logged at WARN or ERROR:\n%s", out)
				}
				if strings.Contains(out, "removing files") {
					t.Errorf("a release was removed:\n%s", out)
				}
				if db == "state" {
					checkReadopted(t, cfg.CacheDir, st, manifests)
				}
			})
		}
	}
}

// checkReadopted: each release was re-adopted, and status says so.
func checkReadopted(t *testing.T, cacheDir string, st agent.Status, manifests map[string]*catalog.Manifest) {
	t.Helper()
	for key, m := range manifests {
		dir := filepath.Join(cacheDir, "releases", m.Name, m.Version)
		found := false
		for _, r := range st.Recovered {
			found = found || (r.File == dir && strings.Contains(r.Action, "re-adopted"))
		}
		if !found {
			t.Errorf("%s: status does not say it was re-adopted: %+v", key, st.Recovered)
		}
	}
}

// settled: every subscription ready and every release recorded as wanted.
func settled(st agent.Status, want map[string]agent.Phase) bool {
	for _, s := range st.Subscriptions {
		if !s.Ready {
			return false
		}
	}
	if len(st.Subscriptions) == 0 {
		return false
	}
	got := map[string]agent.Phase{}
	for _, r := range st.Releases {
		got[r.Key()] = r.Phase
	}
	for k, p := range want {
		if got[k] != p {
			return false
		}
	}
	return true
}

// checkCurrent reads current/<name> and checks it is m, byte for byte.
func checkCurrent(cacheDir string, m *catalog.Manifest) error {
	return verifyDir(filepath.Join(cacheDir, "current", m.Name), m)
}

func verifyDir(dir string, m *catalog.Manifest) error {
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return &mismatch{path: filepath.Join(dir, f.Path)}
		}
	}
	return nil
}

type mismatch struct{ path string }

func (m *mismatch) Error() string { return m.path + ": sha256 does not match the manifest" }

// copyTree copies a stopped agent's cache, symlinks as symlinks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o750)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

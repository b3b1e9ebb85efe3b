package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// TestMain lets tests run this package's binary as the real swarmship
// command (for signals and exit codes).
func TestMain(m *testing.M) {
	if os.Getenv("SWARMSHIP_TEST_MAIN") == "1" {
		os.Exit(Execute())
	}
	os.Exit(m.Run())
}

func swarmship(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = Run(ctx, args, &out, &errb)
	return out.String(), errb.String(), code
}

// tree lists a directory's files with sizes, to prove nothing was written.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			lines = append(lines, fmt.Sprintf("%s %d", p, info.Size()))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func initCatalog(t *testing.T) (catalogDir, keysDir string) {
	t.Helper()
	dir := t.TempDir()
	catalogDir, keysDir = filepath.Join(dir, "catalog"), filepath.Join(dir, "keys")
	out, errOut, code := swarmship(t, "catalog", "init", "--catalog", catalogDir, "--keys", keysDir)
	if code != 0 {
		t.Fatalf("catalog init: %d %s", code, errOut)
	}
	if !strings.Contains(out, "fingerprint sha256:") {
		t.Fatalf("init output has no fingerprint: %s", out)
	}
	return catalogDir, keysDir
}

func payload(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCatalogLifecycle(t *testing.T) {
	cat, keys := initCatalog(t)
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		st, err := os.Stat(filepath.Join(keys, role+".key"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s key: %v mode %v, want 0600", role, err, st.Mode().Perm())
		}
	}
	if _, errOut, code := swarmship(t, "catalog", "init", "--catalog", cat, "--keys", t.TempDir()); code == 0 || !strings.Contains(errOut, "already holds a catalog") {
		t.Fatalf("re-init: code %d, %s", code, errOut)
	}
	if _, errOut, code := swarmship(t, "catalog", "init", "--catalog", t.TempDir(), "--keys", keys); code == 0 || !strings.Contains(errOut, "keys already exist") {
		t.Fatalf("overwriting keys: code %d, %s", code, errOut)
	}

	src := payload(t, map[string]string{"bin/app": strings.Repeat("x", 100000), "README": "hello"})
	out, errOut, code := swarmship(t, "publish", src, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "1.0", "--channel", "stable", "--label", "team=pos", "-o", "json")
	if code != 0 {
		t.Fatalf("publish: %s", errOut)
	}
	var res struct {
		InfoHash  string `json:"infohash"`
		TotalSize int64  `json:"total_size"`
		Files     int    `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.InfoHash) != 40 || res.TotalSize != 100005 || res.Files != 2 {
		t.Fatalf("publish -o json: %v %+v\n%s", err, res, out)
	}
	src2 := payload(t, map[string]string{"bin/app": "version two"})
	if _, errOut, code := swarmship(t, "publish", src2, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "2.0", "--channel", "stable"); code != 0 {
		t.Fatalf("publish 2.0: %s", errOut)
	}
	out, _, _ = swarmship(t, "catalog", "ls", "--catalog", cat, "--keys", keys)
	if !regexpLine(out, "app", "1.0", "published") || !regexpLine(out, "app", "2.0", "stable") {
		t.Fatalf("ls:\n%s", out)
	}
	if _, errOut, code := swarmship(t, "catalog", "promote", "app", "1.0", "--channel", "stable", "--catalog", cat, "--keys", keys); code != 0 {
		t.Fatalf("promote: %s", errOut)
	}
	if _, errOut, code := swarmship(t, "catalog", "yank", "app", "2.0", "--catalog", cat, "--keys", keys); code != 0 {
		t.Fatalf("yank: %s", errOut)
	}
	out, _, _ = swarmship(t, "catalog", "ls", "--catalog", cat, "--keys", keys, "-o", "json")
	var rows []struct {
		Version  string
		Channels []string
		Yanked   bool
	}
	json.Unmarshal([]byte(out), &rows)
	if len(rows) != 2 || rows[0].Version != "1.0" || len(rows[0].Channels) != 1 || !rows[1].Yanked {
		t.Fatalf("after promote and yank: %+v", rows)
	}
	out, _, code = swarmship(t, "catalog", "show", "app", "--catalog", cat, "--keys", keys)
	if code != 0 || !strings.Contains(out, "app@1.0") || !strings.Contains(out, "bin/app") {
		t.Fatalf("show picks the newest version that is not yanked:\n%s", out)
	}
	// Every change is in the audit log, in order.
	out, errOut, code = swarmship(t, "audit", "--file", filepath.Join(keys, "audit.jsonl"), "-o", "json")
	var events []struct{ Action, Release, Version, Channel string }
	if err := json.Unmarshal([]byte(out), &events); code != 0 || err != nil {
		t.Fatalf("audit: %d %v %s", code, err, errOut)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action+" "+e.Version)
	}
	if got := strings.Join(actions, ","); got != "keys.init ,publish 1.0,publish 2.0,promote 1.0,yank 2.0" {
		t.Fatalf("audit trail: %s", got)
	}
	out, _, _ = swarmship(t, "audit", "--file", filepath.Join(keys, "audit.jsonl"), "--action", "publish")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || strings.Contains(out, "yank") {
		t.Fatalf("audit --action publish: want a header and two events:\n%s", out)
	}
	if out, errOut, code := swarmship(t, "catalog", "verify", "--catalog", cat, "--keys", keys); code != 0 || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	// A payload object changed behind the catalog's back.
	if err := os.WriteFile(filepath.Join(cat, "data", "app", "1.0", "README"), []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = swarmship(t, "catalog", "verify", "--catalog", cat, "--keys", keys)
	if code != 1 || !strings.Contains(out, "FAIL app@1.0 data/app/1.0/README: sha256") {
		t.Fatalf("verify after tampering: code %d\n%s", code, out)
	}
}

// TestCatalogResignUpgradesOldLayout: a catalog published before targets
// had hash-prefixed copies (deleted here) fails verify with a hint, and
// `catalog resign` writes the missing copies and names them.
func TestCatalogResignUpgradesOldLayout(t *testing.T) {
	cat, keys := initCatalog(t)
	src := payload(t, map[string]string{"bin/app": "one"})
	if _, errOut, code := swarmship(t, "publish", src, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "1.0"); code != 0 {
		t.Fatalf("publish: %s", errOut)
	}
	var hashed []string
	for _, pattern := range []string{"releases/app/*.1.0.json", "torrents/app/*.1.0.torrent"} {
		m, _ := filepath.Glob(filepath.Join(cat, filepath.FromSlash(pattern)))
		if len(m) != 1 || len(filepath.Base(m[0])) < 65 || filepath.Base(m[0])[64] != '.' {
			t.Fatalf("%s matches %v; want one hash-prefixed copy", pattern, m)
		}
		rel, _ := filepath.Rel(cat, m[0])
		hashed = append(hashed, filepath.ToSlash(rel))
		if err := os.Remove(m[0]); err != nil {
			t.Fatal(err)
		}
	}
	out, _, code := swarmship(t, "catalog", "verify", "--catalog", cat, "--keys", keys)
	if code != 1 || !strings.Contains(out, hashed[0]) || !strings.Contains(out, "catalog resign") {
		t.Fatalf("verify of the old layout: code %d\n%s", code, out)
	}
	_, errOut, code := swarmship(t, "catalog", "resign", "--catalog", cat, "--keys", keys)
	if code != 0 || !strings.Contains(errOut, "wrote missing target copy "+hashed[0]) || !strings.Contains(errOut, hashed[1]) {
		t.Fatalf("resign: code %d, %s", code, errOut)
	}
	if out, errOut, code := swarmship(t, "catalog", "verify", "--catalog", cat, "--keys", keys); code != 0 || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify after resign: %d %s %s", code, out, errOut)
	}
}

func regexpLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, f := range fields {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestPublishBadInputWritesNothing(t *testing.T) {
	cat, keys := initCatalog(t)
	good := payload(t, map[string]string{"a": "a"})
	loop := t.TempDir()
	os.Symlink("b", filepath.Join(loop, "a"))
	os.Symlink("a", filepath.Join(loop, "b"))
	fifoDir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--catalog", cat, "--keys", keys}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no paths", []string{"publish", "--name", "a", "--version", "1"}, "nothing to publish"},
		{"missing path", []string{"publish", "/nonexistent/x", "--name", "a", "--version", "1"}, "/nonexistent/x"},
		{"symlink loop", []string{"publish", loop, "--name", "a", "--version", "1"}, "symlink"},
		{"not a regular file", []string{"publish", fifoDir, "--name", "a", "--version", "1"}, "pipe"},
		{"slash in name", []string{"publish", good, "--name", "a/b", "--version", "1"}, "'/'"},
		{"dotdot version", []string{"publish", good, "--name", "a", "--version", ".."}, "must not start with '.'"},
		{"control char", []string{"publish", good, "--name", "a\x01", "--version", "1"}, "contains"},
		{"empty version", []string{"publish", good, "--name", "a", "--version", ""}, "version is empty"},
		{"bad piece length", []string{"publish", good, "--name", "a", "--version", "1", "--piece-length", "1000"}, "--piece-length"},
		{"bad label", []string{"publish", good, "--name", "a", "--version", "1", "--label", "novalue"}, "key=value"},
	}
	before := tree(t, cat)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := swarmship(t, append(tt.args, base...)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("code %d, stderr %q, want it to mention %q", code, errOut, tt.want)
			}
			if after := tree(t, cat); after != before {
				t.Fatalf("catalog changed:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
	t.Run("wrong keys directory", func(t *testing.T) {
		_, otherKeys := initCatalog(t)
		_, errOut, code := swarmship(t, "publish", good, "--catalog", cat, "--keys", otherKeys, "--name", "a", "--version", "1")
		if code == 0 || !strings.Contains(errOut, "wrong keys directory") {
			t.Fatalf("code %d, %s", code, errOut)
		}
		if after := tree(t, cat); after != before {
			t.Fatal("catalog changed")
		}
	})
	t.Run("keys directory without keys", func(t *testing.T) {
		_, errOut, code := swarmship(t, "publish", good, "--catalog", cat, "--keys", t.TempDir(), "--name", "a", "--version", "1")
		if code == 0 || !strings.Contains(errOut, "right directory") {
			t.Fatalf("code %d, %s", code, errOut)
		}
	})
	t.Run("unreachable S3 endpoint is named", func(t *testing.T) {
		_, errOut, code := swarmship(t, "publish", good, "--catalog", "s3://bucket/p", "--keys", keys, "--name", "a", "--version", "1",
			"--s3-endpoint", "http://127.0.0.1:1", "--s3-access-key", "a", "--s3-secret-key", "b")
		if code == 0 || !strings.Contains(errOut, "127.0.0.1:1") {
			t.Fatalf("code %d, %s", code, errOut)
		}
	})
	t.Run("missing S3 credentials", func(t *testing.T) {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
			t.Setenv(k, "")
		}
		_, errOut, code := swarmship(t, "publish", good, "--catalog", "s3://bucket/p", "--keys", keys, "--name", "a", "--version", "1",
			"--s3-endpoint", "http://127.0.0.1:1")
		if code == 0 || !strings.Contains(errOut, "credentials") {
			t.Fatalf("code %d, %s", code, errOut)
		}
	})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// swarmWithApp runs a local swarm that has app@1.0 (app.bin holding
// content) on channel stable, and writes an agent.yaml subscribed to it.
func swarmWithApp(t *testing.T, content string) (sw *localswarm.Swarm, cfgPath, cacheDir string) {
	t.Helper()
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	src := payload(t, map[string]string{"app.bin": content})
	if _, err := sw.Publish(context.Background(), "app", "1.0", []string{src}, "stable"); err != nil {
		t.Fatal(err)
	}
	cfgPath, cacheDir = writeAgentYAML(t, sw, "{name: app, channel: stable}")
	return sw, cfgPath, cacheDir
}

func writeAgentYAML(t *testing.T, sw *localswarm.Swarm, sub string) (path, cacheDir string) {
	t.Helper()
	cacheDir = t.TempDir()
	path = filepath.Join(t.TempDir(), "agent.yaml")
	y := fmt.Sprintf(`catalog:
  url: %s/
  root: %s
tracker: %s/announce
site: store-1
cache_dir: %s
status:
  addr: 127.0.0.1:0
swarm:
  listen_host: 127.0.0.1
offload:
  startup_grace: 100ms
refresh_interval: 1s
subscriptions:
  - %s
`, sw.OriginURL, sw.RootPath, sw.OriginURL, cacheDir, sub)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, cacheDir
}

func TestSyncExitCodes(t *testing.T) {
	sw, cfgPath, cache := swarmWithApp(t, strings.Repeat("z", 3<<20))
	out, errOut, code := swarmship(t, "sync", "--config", cfgPath, "--timeout", "60s")
	if code != 0 {
		t.Fatalf("sync: %d %s", code, errOut)
	}
	if !strings.Contains(out, "active") {
		t.Fatalf("sync output: %s", out)
	}
	if target, err := os.Readlink(filepath.Join(cache, "current", "app")); err != nil || filepath.Base(target) != "1.0" {
		t.Fatalf("current/app -> %q, %v", target, err)
	}
	// A subscription that cannot be satisfied: exit 2 with one line.
	cfgPath2, _ := writeAgentYAML(t, sw, "{name: app, channel: nightly}")
	_, errOut, code = swarmship(t, "sync", "--config", cfgPath2, "--timeout", "3s")
	if code != 2 || !strings.Contains(errOut, "nightly") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Fatalf("unsatisfiable sync: code %d, stderr %q", code, errOut)
	}
	// A broken config names the file.
	bad := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(bad, []byte("catalog:\n  url: x\nbogus: 1\n"), 0o644)
	_, errOut, code = swarmship(t, "sync", "--config", bad)
	if code == 0 || !strings.Contains(errOut, bad+":3:") {
		t.Fatalf("bad config: code %d, %q", code, errOut)
	}
}

func TestAgentStopsCleanlyOnSIGTERM(t *testing.T) {
	_, cfgPath, cache := swarmWithApp(t, strings.Repeat("q", 1<<20))
	cmd := exec.Command(os.Args[0], "agent", "--config", cfgPath, "--log-format", "json")
	cmd.Env = append(os.Environ(), "SWARMSHIP_TEST_MAIN=1")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(60*time.Second, 50*time.Millisecond, func() bool { return activeIs(cache, "app", "1.0") }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("agent did not activate the release:\n%s", logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("agent did not stop within 20s of SIGTERM")
	}
	// State was flushed and the database released.
	recs, err := agent.ReadState(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Phase != agent.PhaseActive || recs[0].Downloaded.Total() < 1<<20 {
		t.Fatalf("state after SIGTERM: %+v", recs)
	}
	if !strings.Contains(logs.String(), `"msg":"release state"`) {
		t.Errorf("no structured state-change log lines:\n%s", logs.String())
	}
}

func TestBundleExportImportOffline(t *testing.T) {
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	src := payload(t, map[string]string{"app.bin": strings.Repeat("b", 2<<20), "etc/conf": "x=1\n"})
	if _, err := sw.Publish(context.Background(), "app", "1.0", []string{src}, "stable"); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "usb")
	out, errOut, code := swarmship(t, "bundle", "export", "--catalog", sw.CatalogDir, "--root", sw.RootPath,
		"--state", t.TempDir(), "--release", "app:stable", "--out", bundle)
	if code != 0 || !strings.Contains(out, "1 releases") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	// The bundle is a conforming TUF repository: targets under their
	// hash-prefixed names too.
	for _, pattern := range []string{"releases/app/*1.0.json", "torrents/app/*1.0.torrent"} {
		if m, _ := filepath.Glob(filepath.Join(bundle, filepath.FromSlash(pattern))); len(m) != 2 {
			t.Fatalf("bundle holds %v for %s; want the plain and the hash-prefixed copy", m, pattern)
		}
	}
	// The air-gapped agent's config names an origin it cannot reach; the
	// bundle replaces it, verified from the same pinned root.
	cfgPath, cache := writeAgentYAML(t, sw, "{name: app, channel: stable}")
	sw.Close()
	out, errOut, code = swarmship(t, "bundle", "import", bundle, "--config", cfgPath, "--timeout", "60s")
	if code != 0 || !strings.Contains(out, "1.0 active") {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(cache, "current", "app", "app.bin"))
	if err != nil || len(b) != 2<<20 {
		t.Fatalf("imported file: %v, %d bytes", err, len(b))
	}

	// A bundle whose payload was altered is refused and activates nothing.
	tampered := filepath.Join(t.TempDir(), "usb")
	if _, errOut, code := swarmship(t, "bundle", "export", "--catalog", sw.CatalogDir, "--root", sw.RootPath,
		"--state", t.TempDir(), "--release", "app@1.0", "--out", tampered); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	if err := os.WriteFile(filepath.Join(tampered, "data", "app", "1.0", "app.bin"), []byte(strings.Repeat("B", 2<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg2, cache2 := writeAgentYAML(t, sw, "{name: app, channel: stable}")
	_, errOut, code = swarmship(t, "bundle", "import", tampered, "--config", cfg2, "--timeout", "5s")
	if code != 2 {
		t.Fatalf("tampered bundle import: code %d, %s", code, errOut)
	}
	if _, err := os.Readlink(filepath.Join(cache2, "current", "app")); err == nil {
		t.Fatal("a tampered bundle was activated")
	}
	// Metadata signed by someone else is refused before any payload is read.
	other := filepath.Join(t.TempDir(), "other")
	_, otherKeys := initCatalog(t)
	os.RemoveAll(other)
	if _, _, code := swarmship(t, "catalog", "init", "--catalog", other, "--keys", otherKeys+"2"); code != 0 {
		t.Fatal("init other")
	}
	for _, name := range []string{"timestamp.json"} {
		b, _ := os.ReadFile(filepath.Join(other, "metadata", name))
		os.WriteFile(filepath.Join(bundle, "metadata", name), b, 0o644)
	}
	cfg3, _ := writeAgentYAML(t, sw, "{name: app, channel: stable}")
	_, errOut, code = swarmship(t, "bundle", "import", bundle, "--config", cfg3, "--timeout", "5s")
	if code != 2 || !strings.Contains(errOut, "catalog") {
		t.Fatalf("foreign metadata: code %d, %s", code, errOut)
	}
}

// activeIs reports whether current/<name> in cache points at version.
func activeIs(cache, name, version string) bool {
	target, err := os.Readlink(filepath.Join(cache, "current", name))
	return err == nil && filepath.Base(target) == version
}

package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// TestTUFJSReadsCatalog has tuf-js (npm), a TUF client written by others,
// read a freshly published directory catalog through the origin's HTTP
// surface with its default settings: it trusts the pinned root, refreshes
// the metadata, and downloads a manifest and a torrent by their
// hash-prefixed names, as the specification says for a root with
// consistent snapshots. Then: a changed hash-prefixed copy is refused, and
// a catalog from before hash-prefixed copies (they are deleted) fails it
// until `catalog resign`'s repair restores them.
func TestTUFJSReadsCatalog(t *testing.T) {
	modules := testenv.RequireNPMPackages(t, filepath.Join("testdata", "tufjs"))
	node := testenv.RequireTool(t, "node")
	rec := &requestLog{}
	s := newSwarm(t, localswarm.OriginOptions{WrapHandler: rec.wrap})
	src := filepath.Join(t.TempDir(), "release")
	for p, content := range map[string]string{"bin/app": "the app\n", "etc/app.conf": "x = 1\n"} {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	res, err := s.Publish(ctx, "app", "1.0", []string{src}, "stable")
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{res.ManifestKey, res.TorrentKey}
	plain := map[string][]byte{}
	hashed := map[string]string{} // target path -> hash-prefixed key
	for _, k := range targets {
		b, err := catalog.ReadAll(ctx, s.Store, k, catalog.MaxTorrentSize)
		if err != nil {
			t.Fatal(err)
		}
		plain[k] = b
		sum := sha256.Sum256(b)
		hashed[k] = catalog.HashedTargetKey(k, hex.EncodeToString(sum[:]))
	}

	t.Run("fresh catalog", func(t *testing.T) {
		rec.reset()
		out := runTUFJS(t, node, modules, s, targets)
		if !out.OK {
			t.Fatalf("tuf-js failed on a freshly published catalog: %s", out.Error)
		}
		for _, k := range targets {
			got, err := os.ReadFile(out.Targets[k].File)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain[k]) {
				t.Errorf("tuf-js downloaded %d bytes for %s that are not the published ones", len(got), k)
			}
		}
		// Targets by their hash-prefixed names only; versioned snapshot
		// and targets metadata.
		reqs := rec.get()
		for _, k := range targets {
			if !slices.Contains(reqs, "GET /"+hashed[k]+" 200") {
				t.Errorf("no successful GET of /%s in %v", hashed[k], reqs)
			}
			for _, r := range reqs {
				if strings.HasPrefix(r, "GET /"+k+" ") {
					t.Errorf("tuf-js fetched the plain name: %s", r)
				}
			}
		}
		for _, role := range []string{"snapshot", "targets"} {
			if !slices.ContainsFunc(reqs, func(r string) bool {
				return strings.HasPrefix(r, "GET /metadata/") && strings.HasSuffix(r, "."+role+".json 200")
			}) {
				t.Errorf("no GET of a versioned %s.json in %v", role, reqs)
			}
		}
		t.Logf("tuf-js requests: %v", reqs)
	})

	// Our own client, as agents use it through the origin, reads the same
	// hash-prefixed names and never needs the plain ones.
	t.Run("our client", func(t *testing.T) {
		hs, err := catalog.NewHTTPStore(s.OriginURL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		root, err := os.ReadFile(s.RootPath)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := catalog.NewClient(hs, root, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		for _, k := range targets {
			b, err := cl.Target(ctx, k, catalog.MaxTorrentSize)
			if err != nil || !bytes.Equal(b, plain[k]) {
				t.Fatalf("Target(%s) = %d bytes, %v", k, len(b), err)
			}
		}
		if reqs, want := rec.get(), []string{"GET /" + hashed[targets[0]] + " 200", "GET /" + hashed[targets[1]] + " 200"}; !slices.Equal(reqs, want) {
			t.Fatalf("our client requested %v; want %v", reqs, want)
		}
	})

	t.Run("changed copy refused", func(t *testing.T) {
		k := res.TorrentKey
		bad := bytes.Clone(plain[k])
		bad[len(bad)/2] ^= 0x01
		put(t, s.Store, hashed[k], bad)
		defer put(t, s.Store, hashed[k], plain[k])
		out := runTUFJS(t, node, modules, s, targets)
		if out.OK {
			t.Fatal("tuf-js accepted a torrent whose bytes do not match the signed hash")
		}
		t.Logf("tuf-js refused it: %s", out.Error)
	})

	t.Run("old catalog repaired", func(t *testing.T) {
		for _, k := range targets {
			if err := s.Store.Delete(ctx, hashed[k]); err != nil {
				t.Fatal(err)
			}
		}
		rec.reset()
		out := runTUFJS(t, node, modules, s, targets)
		if reqs := rec.get(); out.OK || !slices.Contains(reqs, "GET /"+hashed[res.ManifestKey]+" 404") {
			t.Fatalf("tuf-js without hash-prefixed copies: ok %v (%s), requests %v; want a 404 for the manifest", out.OK, out.Error, reqs)
		}
		repo, err := s.Repo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		written, err := repo.RepairTargetCopies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{hashed[res.ManifestKey], hashed[res.TorrentKey]}
		slices.Sort(want)
		if !slices.Equal(written, want) {
			t.Fatalf("repair wrote %v, want %v", written, want)
		}
		if out := runTUFJS(t, node, modules, s, targets); !out.OK {
			t.Fatalf("tuf-js after the repair: %s", out.Error)
		}
	})
}

type tufjsResult struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Targets map[string]struct {
		File   string `json:"file"`
		Length int64  `json:"length"`
	} `json:"targets"`
}

// runTUFJS runs testdata/tufjs/client.js with fresh local metadata (only
// the pinned root) and target directories, against the origin.
func runTUFJS(t *testing.T, node, modules string, s *localswarm.Swarm, targets []string) tufjsResult {
	t.Helper()
	dir := t.TempDir()
	metaDir, targetDir := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	for _, d := range []string{metaDir, targetDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.ReadFile(s.RootPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(metaDir, "root.json"), root, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"metadataBaseUrl": s.OriginURL + "/metadata",
		"targetBaseUrl":   s.OriginURL + "/",
		"metadataDir":     metaDir,
		"targetDir":       targetDir,
		"targets":         targets,
	})
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "tufjs", "client.js"), cfgPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	testenv.DieWithParent(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, runErr := cmd.Output()
	var out tufjsResult
	if err := json.Unmarshal(lastLine(stdout), &out); err != nil {
		t.Fatalf("tuf-js: %v (run: %v)\nstdout: %s\nstderr: %s", err, runErr, stdout, stderr.Bytes())
	}
	if out.OK != (runErr == nil) {
		t.Fatalf("tuf-js said ok=%v but exited with %v\nstderr: %s", out.OK, runErr, stderr.Bytes())
	}
	return out
}

func put(t *testing.T, s catalog.Store, key string, b []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// requestLog records "METHOD /path STATUS" of every request to the origin.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path+" "+strconv.Itoa(sw.status))
		l.mu.Unlock()
	})
}

func (l *requestLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

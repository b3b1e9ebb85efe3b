package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/failover"
)

// faultyMirror serves its inner store's catalog, or fails the way a broken
// mirror does: errors, no answer, or some keys replaced by other bytes.
type faultyMirror struct {
	catalog.Store
	name string

	mu       sync.Mutex
	mode     string            // "", "error" or "hang"
	override map[string][]byte // key -> bytes served instead
}

func (f *faultyMirror) set(mode string, override map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.override = mode, override
}

func (f *faultyMirror) String() string { return f.name }

func (f *faultyMirror) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f.mu.Lock()
	mode, b, ok := f.mode, f.override[key], f.override != nil
	f.mu.Unlock()
	switch mode {
	case "error":
		return nil, errors.New("unexpected status 500 Internal Server Error")
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if ok && b != nil {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return f.Store.GetRange(ctx, key, off, n)
}

func (f *faultyMirror) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return f.GetRange(ctx, key, 0, -1)
}

func TestMirrorsFailOverAndRefuseRollback(t *testing.T) {
	ctx := t.Context()
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	oldTS := tufGet(t, s, "metadata/timestamp.json")
	c.publish(t, "app", "2.0", map[string]string{"bin/app": "two"}, "stable")

	first := &faultyMirror{Store: s, name: "first"}
	second := &faultyMirror{Store: s, name: "second"}
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	later := func() { mu.Lock(); now = now.Add(time.Hour); mu.Unlock() } // every back-off is over
	// The timeout covers the healthy mirror too: short enough that a hang
	// costs little, long enough that a stall under -race is not taken for one.
	m := catalog.NewMirrors([]catalog.Store{first, second}, catalog.MirrorOptions{
		Timeout: 3 * time.Second, Backoff: failover.Policy{Base: time.Minute, Max: 10 * time.Minute}, Now: clock,
	})
	cl, err := catalog.NewClient(m, c.root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wantFirst := func(t *testing.T, reason failover.Reason, detail string) {
		t.Helper()
		st := m.Statuses()
		if st[0].Name != "first" || st[0].Healthy || st[0].Reason != reason || !strings.Contains(st[0].Detail, detail) {
			t.Errorf("first mirror: %+v; want %s (%s)", st[0], reason, detail)
		}
		if st[1].Name != "second" || !st[1].Healthy || !st[1].InUse {
			t.Errorf("second mirror: %+v; want healthy, in use", st[1])
		}
		tufResolve(t, cl, "app", "stable", "", "2.0")
	}

	first.set("error", nil)
	if err := cl.Refresh(ctx); err != nil {
		t.Fatalf("Refresh with the first mirror failing: %v", err)
	}
	wantFirst(t, failover.Error, "500")

	// In back-off the first mirror is not even asked.
	first.set("hang", nil)
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantFirst(t, failover.Error, "500")

	later()
	if err := cl.Refresh(ctx); err != nil {
		t.Fatalf("Refresh with the first mirror hanging: %v", err)
	}
	wantFirst(t, failover.Timeout, "no answer")

	later()
	first.set("", map[string][]byte{"metadata/timestamp.json": oldTS})
	if err := cl.Refresh(ctx); err != nil {
		t.Fatalf("Refresh with the first mirror rolled back: %v", err)
	}
	wantFirst(t, failover.Stale, "rollback refused")

	// After its back-off it is asked again, and refused again.
	later()
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantFirst(t, failover.Stale, "rollback refused")
	if st := m.Statuses(); st[0].Failures != 4 { // error, timeout, stale, stale: none answered well between
		t.Errorf("first mirror failures %d, want 4", st[0].Failures)
	}

	// A target that does not verify on the first mirror comes from the next.
	later()
	first.set("", nil)
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.Statuses(); !st[0].InUse || !st[0].Healthy {
		t.Fatalf("first mirror back: %+v", st[0])
	}
	keys, err := cl.TargetCopies(catalog.ManifestKey("app", "2.0"))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{}
	for _, k := range keys {
		bad[k] = []byte(`{"name":"app","version":"2.0","files":[]}`)
	}
	first.set("", bad)
	mf, err := cl.Manifest(ctx, "app", "2.0")
	if err != nil || mf.Version != "2.0" {
		t.Fatalf("Manifest from the second mirror: %v, %v", mf, err)
	}
	wantFirst(t, failover.Error, "does not match the signed catalog")

	// Every mirror stale: refused, and the client keeps what it had.
	later()
	first.set("", map[string][]byte{"metadata/timestamp.json": oldTS})
	second.set("", map[string][]byte{"metadata/timestamp.json": oldTS})
	err = cl.Refresh(ctx)
	tufWantErr(t, "Refresh from stale mirrors", err, "every catalog mirror failed")
	tufResolve(t, cl, "app", "stable", "", "2.0")
	for _, st := range m.Statuses() {
		if st.Reason != failover.Stale {
			t.Errorf("%s: %+v, want stale", st.Name, st)
		}
	}
}

// TestMirrorsGetRange: payload reads (the agents' offload) go to the next
// mirror when one hangs or errors; a mirror that lacks a key (lagging
// behind) is passed over without being blamed; writes are refused.
func TestMirrorsGetRange(t *testing.T) {
	ctx := t.Context()
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	empty, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tufPut(t, s, "data/app/1.0/a", []byte("0123456789"))
	first := &faultyMirror{Store: s, name: "first"}
	lagging := &faultyMirror{Store: empty, name: "lagging"}
	m := catalog.NewMirrors([]catalog.Store{first, lagging, s}, catalog.MirrorOptions{Timeout: 3 * time.Second})
	read := func(t *testing.T) string {
		t.Helper()
		rc, err := m.GetRange(ctx, "data/app/1.0/a", 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first.set("hang", nil)
	if got := read(t); got != "234" {
		t.Fatalf("read %q", got)
	}
	st := m.Statuses()
	if st[0].Reason != failover.Timeout || st[1].Reason != "" || !st[1].Healthy || !st[2].InUse {
		t.Errorf("statuses %+v", st)
	}
	if m.String() != s.String() {
		t.Errorf("String %q, want the mirror in use %q", m.String(), s.String())
	}
	if _, err := m.Stat(ctx, "data/app/1.0/missing"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Stat of a key no mirror has: %v, want ErrNotFound", err)
	}
	if err := m.Put(ctx, "x", bytes.NewReader(nil), 0); !errors.Is(err, catalog.ErrReadOnly) {
		t.Errorf("Put: %v", err)
	}
}

// TestMirrorsDeadOriginFailsOverAtOnce: an origin killed hard refuses
// connections, and a payload read moves to the next mirror at once rather
// than after the mirror timeout (agents listing two origins finish a
// rollout at their usual pace when one dies: e2e TestTwoOriginsOnRedis).
func TestMirrorsDeadOriginFailsOverAtOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "a"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stores []catalog.Store
	var servers []*httptest.Server
	for range 2 {
		srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
		t.Cleanup(srv.Close)
		s, err := catalog.NewHTTPStore(srv.URL+"/", srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		stores, servers = append(stores, s), append(servers, srv)
	}
	const timeout = 30 * time.Second
	m := catalog.NewMirrors(stores, catalog.MirrorOptions{Timeout: timeout})
	servers[0].Close()
	start := time.Now()
	rc, err := m.GetRange(t.Context(), "data/a", 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "234" {
		t.Fatalf("read %q, %v", b, err)
	}
	// Half the timeout: a refused connection takes milliseconds even on a
	// loaded machine; waiting for the timeout would take all of it.
	if took := time.Since(start); took > timeout/2 {
		t.Errorf("failover took %v: the dead origin was waited for", took)
	}
	if st := m.Statuses(); st[0].Reason != failover.Error || !st[1].InUse {
		t.Errorf("statuses %+v, want the dead origin skipped for an error and the other in use", st)
	}
}

package seeder_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// tokenOrigin runs a seeding origin in token mode over a directory catalog
// holding acme's app@1.0, with a refresh interval long enough that only
// the tracker's reload-on-miss can pick up later releases.
type tokenOrigin struct {
	o       *seeder.Origin
	url     string
	store   catalog.Store
	keys    catalog.Keys
	issue   func(c token.Claims) string
	publish func(version string) [20]byte
}

func newTokenOrigin(t *testing.T) *tokenOrigin {
	t.Helper()
	dir := t.TempDir()
	store, keys, root := newTestCatalog(t, dir)
	priv := newTokenKey(t, filepath.Join(dir, "tok"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := &tokenOrigin{url: "http://" + ln.Addr().String(), store: store, keys: keys}
	to.issue = func(c token.Claims) string {
		c.IssuedAt, c.Expires = time.Now(), time.Now().Add(time.Hour)
		s, err := token.Issue(priv, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	to.publish = func(version string) [20]byte {
		p := filepath.Join(t.TempDir(), "file.bin")
		b := make([]byte, 100<<10)
		rand.Read(b)
		os.WriteFile(p, b, 0o644)
		res, err := publish.Publish(context.Background(), store, keys, publish.PublishOptions{
			Name: "app", Version: version, Paths: []string{p}, Tenant: "acme",
			WebSeedURL: to.url, Announce: []string{to.url + "/announce"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var ih [20]byte
		h, _ := hex.DecodeString(res.InfoHash)
		copy(ih[:], h)
		return ih
	}
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := true
	to.o, err = seeder.New(seeder.Config{
		Listen: ln.Addr().String(), Seed: &seed, PeerHost: "127.0.0.1", CacheDir: filepath.Join(dir, "cache"),
		RefreshInterval: time.Hour, TokenPublicKey: filepath.Join(dir, "tok", token.PublicKeyFile),
	}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: to.o.Handler()}
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Close(); to.o.Close() })
	to.publish("1.0")
	go to.o.Run(ctx)
	return to
}

// announce sends an agent's announce with tok and returns the body.
func (to *tokenOrigin) announce(t *testing.T, ih [20]byte, tok, tenant string) string {
	t.Helper()
	pid := make([]byte, 20)
	rand.Read(pid)
	q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {string(pid)}, "port": {"6881"}, "left": {"1"},
		"tenant": {tenant}, "site": {"s1"}, "region": {"eu"}, "role": {"agent"}}
	req, _ := http.NewRequest(http.MethodGet, to.url+"/announce?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	_, body := do(t, req)
	return body
}

func TestTrackerTakesOnlyCatalogInfohashes(t *testing.T) {
	to := newTokenOrigin(t)
	acme := to.issue(token.Claims{Tenant: "acme", Site: "s1", Region: "eu"})
	other := to.issue(token.Claims{Tenant: "other", Site: "s1", Region: "eu"})

	var random [20]byte
	rand.Read(random[:])
	if body := to.announce(t, random, acme, "acme"); !strings.Contains(body, "unknown info_hash") {
		t.Errorf("random infohash: %q", body)
	}
	// A release published after the origin's last refresh is taken at the
	// first announce (reload on a miss), by its own tenant only.
	ih2 := to.publish("2.0")
	if body := to.announce(t, ih2, acme, "acme"); strings.Contains(body, "failure") {
		t.Errorf("new release, own tenant: %q", body)
	}
	if body := to.announce(t, ih2, other, "other"); !strings.Contains(body, "unknown info_hash") {
		t.Errorf("new release, another tenant: %q", body)
	}
	if n := len(to.o.Tracker().Peers(random)); n != 0 {
		t.Errorf("%d peers stored for a random infohash", n)
	}
}

func TestOriginSeederAnnouncesInTokenMode(t *testing.T) {
	to := newTokenOrigin(t)
	var ih [20]byte
	b, err := catalog.ReadAll(context.Background(), to.store, catalog.ManifestKey("app", "1.0"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := hex.DecodeString(m.InfoHash)
	copy(ih[:], h)
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		peers := to.o.Tracker().Peers(ih)
		for _, p := range peers {
			if p.Identity.Role == tracker.RoleOrigin && p.Identity.Tenant == "acme" && p.Left == 0 {
				return nil
			}
		}
		return fmt.Errorf("the origin's seeder is not in the swarm: %+v", peers)
	})
}

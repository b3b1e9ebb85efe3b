package seeder_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/seeder"
)

// Two origins with state.redis set serve one swarm: a peer announced to
// one is in the other's answers and swarm view.
func TestOriginsShareTrackerOnRedis(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := t.TempDir()
	store, keys, root := newTestCatalog(t, dir)
	p := filepath.Join(t.TempDir(), "file.bin")
	b := make([]byte, 64<<10)
	rand.Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := publish.Publish(context.Background(), store, keys, publish.PublishOptions{
		Name: "app", Version: "1.0", Paths: []string{p}, Tenant: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	var ih [20]byte
	h, _ := hex.DecodeString(res.InfoHash)
	copy(ih[:], h)

	var origins [2]*seeder.Origin
	var urls [2]string
	for i := range origins {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf", string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		seed := false
		o, err := seeder.New(seeder.Config{
			Listen: ln.Addr().String(), Seed: &seed, RefreshInterval: time.Hour,
			State: state.Config{Redis: &state.RedisConfig{URL: rd.URL, Prefix: "origins"}},
		}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: o.Handler()}
		go srv.Serve(ln)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); o.Run(ctx) }()
		// Run ends before Close, so that nothing writes under dir then.
		t.Cleanup(func() { cancel(); <-done; srv.Close(); o.Close() })
		origins[i], urls[i] = o, "http://"+ln.Addr().String()
		waitReady(t, http.DefaultClient, urls[i])
	}
	announce := func(i int, peer byte) string {
		t.Helper()
		q := url.Values{"info_hash": {string(ih[:])}, "peer_id": {strings.Repeat(string(rune('A'+peer)), 20)},
			"port": {"6881"}, "left": {"1"}, "tenant": {"acme"}, "site": {"s1"}, "region": {"eu"}, "role": {"agent"}}
		resp, err := http.Get(urls[i] + "/announce?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if body := announce(0, 1); strings.Contains(body, "failure") {
		t.Fatalf("announce to origin A: %q", body)
	}
	if n := len(origins[1].Tracker().Peers(ih)); n != 1 {
		t.Errorf("origin B lists %d peers, want the one announced to A", n)
	}
	if body := announce(1, 2); !strings.Contains(body, "incomplete"+"i2e") {
		t.Errorf("origin B's answer does not count the peer announced to A: %q", body)
	}
}

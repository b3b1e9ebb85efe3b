package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/delta"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// deltaPiece is the piece length of the delta tests' releases: small
// enough that a few MiB make many pieces.
const deltaPiece = 256 << 10

// deltaPair is a v1 and a v2 of one release, as file contents, and the
// hints that map v2 onto v1 (built here by hand: the test knows its edits).
type deltaPair struct {
	v1, v2  map[string][]byte
	changed int64 // bytes of v2 found nowhere in v1
	regions int   // changed regions
	// hint returns v1's location of v2's file bytes [off, off+n) as
	// (v1 path, v1 offset) runs.
	hint func(path string) []fileRun
}

type fileRun struct {
	off, n int64 // in the v2 file
	v1Path string
	v1Off  int64
}

func randBytes(r *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// newDeltaPair builds v1 (five files, ~7 MiB) and v2: a.bin changed in
// place (100 bytes), 4 KiB inserted in the middle of b.bin, c.bin renamed
// to c2.bin, d.bin removed, f.bin added (200 KiB), e.bin unchanged.
func newDeltaPair() deltaPair {
	r := rand.NewChaCha8([32]byte{'d', 'e', 'l', 't', 'a'})
	a := randBytes(r, 3<<20)
	b := randBytes(r, 2<<20)
	c := randBytes(r, 1<<20+4321)
	d := randBytes(r, 512<<10)
	e := randBytes(r, 300<<10+7)
	f := randBytes(r, 200<<10)
	edit := randBytes(r, 100)
	ins := randBytes(r, 4096)
	const editAt, insAt = 1<<20 + 777, 1<<20 + 5

	a2 := bytes.Clone(a)
	copy(a2[editAt:], edit)
	b2 := append(append(bytes.Clone(b[:insAt]), ins...), b[insAt:]...)
	p := deltaPair{
		v1:      map[string][]byte{"a.bin": a, "b.bin": b, "c.bin": c, "d.bin": d, "e.bin": e},
		v2:      map[string][]byte{"a.bin": a2, "b.bin": b2, "c2.bin": c, "e.bin": e, "f.bin": f},
		changed: int64(len(edit) + len(ins) + len(f)),
		regions: 3,
	}
	p.hint = func(path string) []fileRun {
		switch path {
		case "a.bin":
			return []fileRun{{0, editAt, "a.bin", 0}, {editAt + 100, int64(len(a)) - editAt - 100, "a.bin", editAt + 100}}
		case "b.bin":
			return []fileRun{{0, insAt, "b.bin", 0}, {insAt + 4096, int64(len(b)) - insAt, "b.bin", insAt}}
		case "c2.bin":
			return []fileRun{{0, int64(len(c)), "c.bin", 0}}
		case "e.bin":
			return []fileRun{{0, int64(len(e)), "e.bin", 0}}
		}
		return nil
	}
	return p
}

func writeFiles(t *testing.T, files map[string][]byte) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// publishWithHints publishes files as name@version with delta hints
// against base. The release is built by publish in a scratch catalog
// (manifest order is publish's), the hints are added to its manifest, and
// manifest, torrent and payload are signed into sw's catalog.
func publishWithHints(t *testing.T, sw *localswarm.Swarm, name, version, base string, files map[string][]byte, hint func(string) []fileRun, channels ...string) *catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	scratch, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Init(ctx, scratch, keys, catalog.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := catpublish.Publish(ctx, scratch, keys, catpublish.PublishOptions{
		Name: name, Version: version, Paths: writeFiles(t, files), PieceLength: deltaPiece,
		WebSeedURL: sw.OriginURL + "/", Announce: []string{sw.OriginURL + "/announce"},
	}); err != nil {
		t.Fatal(err)
	}
	mb, err := catalog.ReadAll(ctx, scratch, catalog.ManifestKey(name, version), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := catalog.ReadAll(ctx, scratch, catalog.TorrentKey(name, version), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	// Manifest order is torrent order (torrentfile.Check): offsets follow it.
	h := &delta.Hints{Base: base}
	var off int64
	for _, f := range m.Files {
		for _, r := range hint(f.Path) {
			h.Ranges = append(h.Ranges, delta.Range{Off: off + r.off, Len: r.n, BasePath: r.v1Path, BaseOff: r.v1Off})
		}
		off += f.Size
	}
	if len(h.Ranges) > 0 {
		m.Delta = h
	}
	if mb, err = catalog.MarshalManifest(m); err != nil {
		t.Fatal(err)
	}
	objs, err := scratch.List(ctx, catalog.DataPrefix(name, version))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := catalog.ReadAll(ctx, scratch, o.Key, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Store.Put(ctx, o.Key, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	for key, b := range map[string][]byte{catalog.ManifestKey(name, version): mb, catalog.TorrentKey(name, version): tb} {
		if err := sw.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := catalog.Update(ctx, sw.Store, sw.Keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error {
		return r.AddRelease(mb, tb, channels)
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func originPayloadBytes(sw *localswarm.Swarm) int64 {
	eg := sw.Origin.Egress()
	return eg.WebSeed + eg.Peer
}

// Agents holding v1 receive v2 (edit in place, insertion, rename, add,
// remove): the origin sends about the changed bytes, every file of v2
// verifies, status shows what was reused; one agent whose v1 copy was
// damaged (a byte in a file with hints, a byte in the renamed file) fetches
// the affected pieces and activates correct files; an agent without v1
// downloads normally.
func TestDeltaAgentsReuseHeldRelease(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	pair := newDeltaPair()
	m1 := publishWithHints(t, sw, "app", "1.0", "0", pair.v1, func(string) []fileRun { return nil }, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}
	agents := startAgents(t, sw, 3, sub, nil)
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m1)
	}
	// Damage agent-3's copy of v1 where v2 still holds the same bytes.
	victim := agents[2]
	for _, c := range []struct {
		file string
		at   int64
	}{{"a.bin", 2<<20 + 3}, {"c.bin", 77}} {
		p := filepath.Join(victim.Config.CacheDir, "releases", "app", "1.0", c.file)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{pair.v1[c.file][c.at] ^ 0xff}, c.at); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	before := originPayloadBytes(sw)
	m2 := publishWithHints(t, sw, "app", "2.0", "1.0", pair.v2, pair.hint, "stable")
	waitActive(t, "app", "2.0", 90*time.Second, agents...)
	sent := originPayloadBytes(sw) - before
	for _, ra := range agents {
		checkActiveFiles(t, ra, m2)
	}
	// Sub-piece fetching asks the origin for the changed bytes only; allow
	// a piece per changed region, the victim's two damaged pieces and a
	// little for a fetch a peer overtook.
	bound := pair.changed + int64(pair.regions+2)*deltaPiece + 64<<10
	t.Logf("v2 is %d bytes, %d changed; origin sent %d (bound %d)", m2.TotalSize, pair.changed, sent, bound)
	if sent > bound {
		t.Errorf("origin sent %d payload bytes for v2, want <= %d (changed %d)", sent, bound, pair.changed)
	}
	for _, ra := range agents {
		rs := releaseStatus(ra, "app", "2.0")
		t.Logf("%s: reused %d, downloaded %+v", ra.Name, rs.Reused, rs.Downloaded)
		minReused := m2.TotalSize - pair.changed - int64(pair.regions)*deltaPiece
		if ra == victim {
			minReused -= 2 * deltaPiece
		}
		if rs.Reused < minReused || rs.Reused > m2.TotalSize {
			t.Errorf("%s reused %d bytes of %d, want >= %d", ra.Name, rs.Reused, m2.TotalSize, minReused)
		}
	}
	var reused int64
	for _, ra := range agents {
		reused += releaseStatus(ra, "app", "2.0").Reused
	}
	// The agents' reports carry what they reused to the origin's rollout
	// view (and its dashboard).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int64
		for _, r := range getRollout(t, sw.OriginURL).Releases {
			if r.Release == "app@2.0" {
				got = r.Reused
			}
		}
		if got == reused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout shows %d bytes reused for app@2.0, the agents' status %d", got, reused)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rs := releaseStatus(victim, "app", "2.0"); rs.Downloaded.Total() < 2*deltaPiece/2 {
		t.Errorf("%s downloaded only %d bytes: its damaged pieces were not fetched", victim.Name, rs.Downloaded.Total())
	}

	// An agent that holds nothing downloads v2 whole.
	fresh := startAgents(t, sw, 1, sub, func(c *agent.Config) {
		c.CacheDir = filepath.Join(sw.Dir, "agents", "fresh")
	})
	waitActive(t, "app", "2.0", 90*time.Second, fresh...)
	checkActiveFiles(t, fresh[0], m2)
	if rs := releaseStatus(fresh[0], "app", "2.0"); rs.Reused != 0 || rs.Downloaded.Total() < m2.TotalSize {
		t.Errorf("fresh agent: reused %d, downloaded %d of %d", rs.Reused, rs.Downloaded.Total(), m2.TotalSize)
	}
}

// Item 3 of issue 17, measured: the pieces of v2 partly held in v1 reach
// an agent holding v1 (a) as their missing ranges from the origin
// (sub-piece fetching), (b) whole from the origin (sub-piece fetching
// off), (c) whole from a peer that has v2. Logged: bytes and time per
// way; asserted only that (a) asks the origin for fewer bytes than (b).
func TestDeltaSubPieceVersusWholePiece(t *testing.T) {
	pair := newDeltaPair()
	type result struct {
		origin, peer int64
		took         time.Duration
	}
	run := func(t *testing.T, subPiece, peerHasV2 bool) result {
		agent.SetSubPieceFetch(subPiece)
		t.Cleanup(func() { agent.SetSubPieceFetch(true) })
		sw := newSwarm(t, localswarm.OriginOptions{})
		publishWithHints(t, sw, "app", "1.0", "0", pair.v1, func(string) []fileRun { return nil }, "stable")
		holder := startAgents(t, sw, 1, agent.Subscription{Name: "app", Channel: "stable"}, nil)[0]
		waitActive(t, "app", "1.0", 60*time.Second, holder)
		m2 := publishWithHints(t, sw, "app", "2.0", "1.0", pair.v2, pair.hint)
		if peerHasV2 {
			cfg := sw.AgentConfig("peer", "site-0", "eu", agent.Subscription{Name: "app", Version: "2.0"})
			p, err := sw.StartAgent(context.Background(), "peer", cfg)
			if err != nil {
				t.Fatal(err)
			}
			waitActive(t, "app", "2.0", 60*time.Second, p)
		}
		before := originPayloadBytes(sw)
		start := time.Now()
		if _, err := catalog.Update(context.Background(), sw.Store, sw.Keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error {
			return r.Promote("app", "2.0", "stable")
		}); err != nil {
			t.Fatal(err)
		}
		waitActive(t, "app", "2.0", 60*time.Second, holder)
		took := time.Since(start)
		checkActiveFiles(t, holder, m2)
		rs := releaseStatus(holder, "app", "2.0")
		if sent := originPayloadBytes(sw) - before; sent != rs.Downloaded.Origin {
			t.Logf("origin sent %d, the holder counted %d", sent, rs.Downloaded.Origin)
		}
		return result{origin: rs.Downloaded.Origin, peer: rs.Downloaded.Peer, took: took}
	}
	var sub, whole, peer result
	t.Run("subpiece-origin", func(t *testing.T) { sub = run(t, true, false) })
	t.Run("whole-origin", func(t *testing.T) { whole = run(t, false, false) })
	t.Run("whole-peer", func(t *testing.T) { peer = run(t, true, true) })
	t.Logf("changed bytes %d; sub-piece from origin: %d origin + %d peer bytes in %v; whole pieces from origin: %d + %d in %v; whole pieces from a peer: %d + %d in %v",
		pair.changed, sub.origin, sub.peer, sub.took.Round(time.Millisecond), whole.origin, whole.peer, whole.took.Round(time.Millisecond),
		peer.origin, peer.peer, peer.took.Round(time.Millisecond))
	if t.Failed() {
		return
	}
	if sub.origin >= whole.origin {
		t.Errorf("sub-piece fetching asked the origin for %d bytes, whole pieces %d", sub.origin, whole.origin)
	}
	if sub.origin+sub.peer > pair.changed+64<<10 {
		t.Errorf("sub-piece fetching moved %d bytes for %d changed", sub.origin+sub.peer, pair.changed)
	}
}

// Stopped after it filled v2 from v1 but before the origin sent the rest,
// an agent restarted on the same cache keeps what it reused (recorded
// complete), fetches only the rest and activates correct files.
func TestDeltaAgentRestartAfterReuse(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/data/app/2.0/") {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	t.Cleanup(open) // before the swarm closes: no handler left waiting
	pair := newDeltaPair()
	publishWithHints(t, sw, "app", "1.0", "0", pair.v1, func(string) []fileRun { return nil }, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}
	cfg := sw.AgentConfig("solo", "site-1", "eu", sub)
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	ra, err := sw.StartAgent(context.Background(), "solo", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	m2 := publishWithHints(t, sw, "app", "2.0", "1.0", pair.v2, pair.hint, "stable")
	if !testenv.Poll(60*time.Second, 20*time.Millisecond, func() bool { return releaseStatus(ra, "app", "2.0").Reused > 0 }) {
		t.Fatal("the agent never reused anything of v1")
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}
	first := readState(t, cfg, "app@2.0")
	if first.Phase != agent.PhaseDownloading || first.Reused == 0 {
		t.Fatalf("stopped agent's record of v2: %+v", first)
	}
	open()
	before := originPayloadBytes(sw)
	cfg2 := sw.AgentConfig("solo", "site-1", "eu", sub) // same cache dir
	cfg2.Offload.StartupGrace = 10 * time.Millisecond
	ra2, err := sw.StartAgent(context.Background(), "solo-restarted", cfg2)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "2.0", 60*time.Second, ra2)
	checkActiveFiles(t, ra2, m2)
	final := releaseStatus(ra2, "app", "2.0")
	sent := originPayloadBytes(sw) - before
	t.Logf("first run reused %d; after the restart reused %d, origin sent %d for %d changed", first.Reused, final.Reused, sent, pair.changed)
	if final.Reused < first.Reused {
		t.Errorf("reused fell from %d to %d across the restart", first.Reused, final.Reused)
	}
	if sent > pair.changed+int64(pair.regions)*deltaPiece {
		t.Errorf("origin sent %d after the restart, want <= %d", sent, pair.changed+int64(pair.regions)*deltaPiece)
	}
}

// The same pair, published by publish itself (hints against the version
// the channel points at, catalog/publish/hints.go): agents holding v1
// get about the changed bytes from the origin.
func TestDeltaAgentsWithPublishedHints(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	pair := newDeltaPair()
	ctx := context.Background()
	if _, err := sw.PublishWith(ctx, catpublish.PublishOptions{Name: "app", Version: "1.0", Paths: writeFiles(t, pair.v1),
		PieceLength: deltaPiece, Channels: []string{"stable"}}); err != nil {
		t.Fatal(err)
	}
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 60*time.Second, agents...)
	before := originPayloadBytes(sw)
	if _, err := sw.PublishWith(ctx, catpublish.PublishOptions{Name: "app", Version: "2.0", Paths: writeFiles(t, pair.v2),
		PieceLength: deltaPiece, Channels: []string{"stable"}}); err != nil {
		t.Fatal(err)
	}
	b, err := catalog.ReadAll(ctx, sw.Store, catalog.ManifestKey("app", "2.0"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Delta == nil || m2.Delta.Base != "1.0" {
		t.Fatalf("publish signed no hints against 1.0: %+v", m2.Delta)
	}
	waitActive(t, "app", "2.0", 60*time.Second, agents...)
	sent := originPayloadBytes(sw) - before
	for _, ra := range agents {
		checkActiveFiles(t, ra, m2)
	}
	bound := pair.changed + int64(pair.regions)*deltaPiece + 64<<10
	t.Logf("hinted %d of %d bytes; origin sent %d for %d changed (bound %d)", m2.Delta.Covered(0, m2.TotalSize), m2.TotalSize, sent, pair.changed, bound)
	if sent > bound {
		t.Errorf("origin sent %d payload bytes for v2, want <= %d", sent, bound)
	}
}

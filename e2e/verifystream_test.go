package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// A release whose pieces all pass their SHA-1 but whose signed SHA-256
// says other bytes (a publisher's bug, or a torrent forged to match a
// manifest's sizes) is never activated, with pieces asked in file order
// (streaming verification) or rarest first: the agent keeps the previous
// version active and records the mismatch. The good version before it is
// verified while downloading.
func TestSHA256MismatchNeverActivated(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	sizes := map[string]int64{"app.bin": 1<<20 + 333, "VERSION": 10, "lib/a.so": 300 << 10}
	m1 := publish(t, sw, "app", "1.0", 61, sizes, "stable")

	var agents []*localswarm.RunningAgent
	logs := map[string]*testenv.SyncBuffer{}
	for _, order := range []string{"verify", "rarest"} {
		cfg := sw.AgentConfig(order, "site-"+order, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Swarm.Order = order
		logs[order] = &testenv.SyncBuffer{}
		ra, err := sw.StartAgentWith(context.Background(), order, cfg, agent.Options{
			Logger: slog.New(slog.NewTextHandler(logs[order], &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
	}
	waitActive(t, "app", "1.0", 60*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m1)
		l := grepLines(logs[ra.Name].String(), `msg="release hashed"`)
		t.Logf("%s: %s", ra.Name, l)
		if !strings.Contains(l, "version=1.0") {
			t.Errorf("%s: no streaming verification logged for 1.0", ra.Name)
		}
	}

	forgeRelease(t, sw, m1, "2.0", "app.bin")
	deadline := time.Now().Add(90 * time.Second)
	for _, ra := range agents {
		for !strings.Contains(logs[ra.Name].String(), "release failed verification") {
			if v := activeVersion(ra); v != "1.0" {
				t.Fatalf("%s: current/app -> %s, want 1.0 kept", ra.Name, v)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no verification failure for 2.0; status %+v", ra.Name, releaseStatus(ra, "app", "2.0"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		log := logs[ra.Name].String()
		if !strings.Contains(log, "app.bin: sha256") || !strings.Contains(log, "does not match the signed") {
			t.Errorf("%s: the failure does not name the file and the mismatch:\n%s", ra.Name, grepLines(log, "failed verification"))
		}
	}
	// It keeps failing (each pass fetches it again) and is never activated.
	for range 50 {
		for _, ra := range agents {
			if v := activeVersion(ra); v != "1.0" {
				t.Fatalf("%s: current/app -> %s, want 1.0 kept", ra.Name, v)
			}
			if st := releaseStatus(ra, "app", "2.0"); st.Phase == agent.PhaseVerified || st.Phase == agent.PhaseActive {
				t.Fatalf("%s: 2.0 is %s", ra.Name, st.Phase)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ra := range agents {
		checkActiveFiles(t, ra, m1)
	}
}

// forgeRelease signs name@version with good's payload and torrent (renamed
// to version, so its pieces pass their SHA-1) and a manifest whose SHA-256
// for file bad is wrong, and points stable at it.
func forgeRelease(t *testing.T, sw *localswarm.Swarm, good *catalog.Manifest, version, bad string) {
	t.Helper()
	ctx := context.Background()
	tb, err := catalog.ReadAll(ctx, sw.Store, catalog.TorrentKey(good.Name, good.Version), catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Load(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	info.Name = version
	if mi.InfoBytes, err = bencode.Marshal(&info); err != nil {
		t.Fatal(err)
	}
	var tbuf bytes.Buffer
	if err := mi.Write(&tbuf); err != nil {
		t.Fatal(err)
	}
	m := *good
	m.Version = version
	m.InfoHash = mi.HashInfoBytes().HexString()
	m.Files = append([]catalog.ManifestFile(nil), good.Files...)
	found := false
	for i, f := range m.Files {
		if f.Path == bad {
			m.Files[i].SHA256 = strings.Repeat("ab", 32)
			found = true
		}
		rc, err := sw.Store.Get(ctx, catalog.DataPrefix(good.Name, good.Version)+f.Path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Store.Put(ctx, catalog.DataPrefix(good.Name, version)+f.Path, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("no file %s in %s", bad, good.Ref())
	}
	mj, err := catalog.MarshalManifest(&m)
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range map[string][]byte{catalog.ManifestKey(m.Name, version): mj, catalog.TorrentKey(m.Name, version): tbuf.Bytes()} {
		if err := sw.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := catalog.Update(ctx, sw.Store, sw.Keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error {
		return r.AddRelease(mj, tbuf.Bytes(), []string{"stable"})
	}); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/localswarm"
)

// The publisher's own hints, end to end: v2 published into the channel
// that points at v1 carries hints computed by publish (no hand-made
// ones) covering exactly the unchanged bytes, and agents holding v1 get
// v2 with the origin sending about the changed bytes.
func TestDeltaPublishedHintsReachAgents(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	ctx := context.Background()
	pair := newDeltaPair()
	pub := func(version string, files map[string][]byte) *catalog.Manifest {
		t.Helper()
		if _, err := sw.PublishWith(ctx, catpublish.PublishOptions{Name: "app", Version: version, Paths: writeFiles(t, files),
			Channels: []string{"stable"}, PieceLength: deltaPiece}); err != nil {
			t.Fatal(err)
		}
		b, err := catalog.ReadAll(ctx, sw.Store, catalog.ManifestKey("app", version), catalog.MaxManifestSize)
		if err != nil {
			t.Fatal(err)
		}
		m, err := catalog.ParseManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := pub("1.0", pair.v1)
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m1)
	}

	before := originPayloadBytes(sw)
	m2 := pub("2.0", pair.v2)
	if m2.Delta == nil || m2.Delta.Base != "1.0" {
		t.Fatalf("v2 published into stable has no hints against 1.0: %+v", m2.Delta)
	}
	if got := m2.Delta.Covered(0, m2.TotalSize); got != m2.TotalSize-pair.changed {
		t.Errorf("hints cover %d bytes, want the %d unchanged", got, m2.TotalSize-pair.changed)
	}
	waitActive(t, "app", "2.0", 90*time.Second, agents...)
	sent := originPayloadBytes(sw) - before
	for _, ra := range agents {
		checkActiveFiles(t, ra, m2)
	}
	bound := pair.changed + int64(pair.regions)*deltaPiece + 64<<10
	t.Logf("v2 is %d bytes, %d changed; origin sent %d (bound %d)", m2.TotalSize, pair.changed, sent, bound)
	if sent > bound {
		t.Errorf("origin sent %d payload bytes for v2, want <= %d", sent, bound)
	}
	for _, ra := range agents {
		if rs := releaseStatus(ra, "app", "2.0"); rs.Reused < m2.TotalSize-pair.changed-int64(pair.regions)*deltaPiece {
			t.Errorf("%s reused %d bytes of %d", ra.Name, rs.Reused, m2.TotalSize)
		}
	}
}

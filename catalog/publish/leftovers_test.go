package publish_test

import (
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
)

func TestCollectGarbage(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		ctx := t.Context()
		c := newPubCatalog(t, s)
		c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, map[string]string{"bin/app": "one", "README": "r"})}})
		signed := storetest.Contents(t, s)
		orphans := []string{
			catalog.StagingKey("app", "2.0", "20261207T000000Z-aaaa") + "data/bin/app", // a killed publish
			catalog.StagingKey("app", "2.0", "20261207T000000Z-aaaa") + "release.json",
			"data/app/1.0/extra.bin",      // not in the signed manifest
			"data/ghost/1.0/f",            // a release never signed
			"torrents/ghost/1.0.torrent",  // its torrent
			"releases/ghost/1.0.json",     // and manifest
			"releases/app/notsigned.json", // wrong name for a signed target
			"torrents/app/deadbeef.1.0.torrent",
		}
		for _, k := range orphans {
			if err := s.Put(ctx, k, strings.NewReader("left"), 4); err != nil {
				t.Fatal(err)
			}
		}
		left, err := publish.FindLeftovers(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOfLeftovers(left); !sameSet(got, orphans) {
			t.Fatalf("FindLeftovers = %v; want %v", got, orphans)
		}
		// Everything is younger than an hour: an in-flight publish could
		// own it, so gc keeps all of it.
		gone, err := publish.CollectGarbage(ctx, s, time.Hour, time.Now(), false)
		if err != nil || len(gone) != 0 {
			t.Fatalf("gc of young leftovers removed %v, %v; want nothing", gone, err)
		}
		// A dry run two hours later lists them and deletes nothing.
		later := time.Now().Add(2 * time.Hour)
		if gone, err := publish.CollectGarbage(ctx, s, time.Hour, later, true); err != nil || !sameSet(keysOfLeftovers(gone), orphans) {
			t.Fatalf("dry run = %v, %v", gone, err)
		}
		if left, _ := publish.FindLeftovers(ctx, s); len(left) != len(orphans) {
			t.Fatalf("dry run deleted something: %d leftovers remain", len(left))
		}
		if gone, err := publish.CollectGarbage(ctx, s, time.Hour, later, false); err != nil || !sameSet(keysOfLeftovers(gone), orphans) {
			t.Fatalf("gc = %v, %v", gone, err)
		}
		// Exactly what was there before the orphans remains, and verifies.
		sameContents(t, s, signed)
		checkClean(t, c, 1)
	})
}

func keysOfLeftovers(l []publish.Leftover) []string {
	var out []string
	for _, x := range l {
		out = append(out, x.Key)
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x] == 0 {
			return false
		}
		m[x]--
	}
	return true
}

// A publish that committed but failed to copy its bytes into place leaves
// the only copy of the signed manifest in staging: gc must keep it until a
// re-run has completed the release.
func TestCollectGarbageKeepsStagingOfSignedRelease(t *testing.T) {
	storetest.EachStore(t, storetest.Gateway(t), func(t *testing.T, s catalog.Store) {
		ctx := t.Context()
		c := newPubCatalog(t, s)
		opts := publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, map[string]string{"bin/app": "one"})}}
		_, err := publish.Publish(ctx, &failingStore{Store: s, failPrefix: "data/"}, c.keys, opts)
		wantErrContains(t, "publish failing to move into place", err, "is signed, but moving it into place failed")
		later := time.Now().Add(2 * time.Hour)
		if gone, err := publish.CollectGarbage(ctx, s, 0, later, false); err != nil || len(gone) != 0 {
			t.Fatalf("gc removed %v, %v; want nothing while the signed release is not in place", gone, err)
		}
		res, err := publish.Publish(ctx, s, c.keys, opts)
		if err != nil || !res.AlreadyPublished {
			t.Fatalf("re-run = %+v, %v", res, err)
		}
		if gone, err := publish.CollectGarbage(ctx, s, 0, later, false); err != nil || len(gone) == 0 {
			t.Fatalf("gc after the re-run removed %v, %v; want the staged copy", gone, err)
		}
		checkClean(t, c, 1)
	})
}

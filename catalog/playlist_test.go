package catalog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
)

func TestPlaylistsSetReadRemove(t *testing.T) {
	dir, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, keys, root := storetest.InitCatalog(t, dir)
	ctx := t.Context()
	v1 := []byte(`{"entries":[]}`)
	v2 := []byte(`{"timezone":"UTC","entries":[]}`)
	for _, doc := range [][]byte{v1, v2} {
		if err := catalog.PublishPlaylist(ctx, dir, keys, catalog.UpdateOptions{}, "lobby", doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := catalog.PublishPlaylist(ctx, dir, keys, catalog.UpdateOptions{}, "../x", v1); err == nil {
		t.Error("a bad schedule name was accepted")
	}
	cl := storetest.Client(t, dir, root, t.TempDir())
	names, err := cl.Playlists()
	if err != nil || strings.Join(names, ",") != "lobby" {
		t.Fatalf("Playlists = %v, %v", names, err)
	}
	got, err := cl.Playlist(ctx, "lobby", 1<<16)
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("Playlist = %q, %v; want the second version", got, err)
	}
	if d, err := cl.PlaylistDigest("lobby"); err != nil || len(d) != 64 {
		t.Errorf("digest %q, %v", d, err)
	}
	if _, err := cl.Playlist(ctx, "lobby", 10); err == nil {
		t.Error("a schedule over the limit was read")
	}
	if rels, err := cl.Releases(); err != nil || len(rels) != 0 {
		t.Errorf("Releases = %v, %v", rels, err)
	}
	if pols, err := cl.Policies(); err != nil || len(pols) != 0 {
		t.Errorf("Policies = %v, %v", pols, err)
	}
	rm := func(r *catalog.Repo) error { return r.RemovePlaylist("lobby") }
	if _, err := catalog.Update(ctx, dir, keys, catalog.UpdateOptions{}, rm); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Update(ctx, dir, keys, catalog.UpdateOptions{}, rm); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := cl.Playlists(); len(names) != 0 {
		t.Errorf("Playlists after rm = %v", names)
	}
}

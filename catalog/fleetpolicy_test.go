package catalog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
)

func TestPolicyDocumentsSetListRemove(t *testing.T) {
	dir, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, keys, root := storetest.InitCatalog(t, dir)
	ctx := t.Context()
	v1 := []byte("name: stores\nassign: {labels: [stores]}\nmode: download-only\n")
	v2 := []byte("name: stores\nassign: {labels: [stores]}\nmode: origin-only\n")
	for _, doc := range [][]byte{v1, v2} {
		if err := catalog.PublishPolicy(ctx, dir, keys, catalog.UpdateOptions{}, "stores", doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := catalog.PublishPolicy(ctx, dir, keys, catalog.UpdateOptions{}, "../x", v1); err == nil {
		t.Error("a bad policy name was accepted")
	}
	cl := storetest.Client(t, dir, root, t.TempDir())
	names, err := cl.Policies()
	if err != nil || strings.Join(names, ",") != "stores" {
		t.Fatalf("Policies = %v, %v", names, err)
	}
	got, err := cl.Policy(ctx, "stores", 1<<16)
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("Policy = %q, %v; want the second version", got, err)
	}
	if _, err := cl.Policy(ctx, "stores", 10); err == nil {
		t.Error("a document over the limit was read")
	}
	// Releases ignore policy targets.
	if rels, err := cl.Releases(); err != nil || len(rels) != 0 {
		t.Errorf("Releases = %v, %v", rels, err)
	}
	if _, err := catalog.Update(ctx, dir, keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.RemovePolicy("stores") }); err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Update(ctx, dir, keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.RemovePolicy("stores") })
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := cl.Policies(); len(names) != 0 {
		t.Errorf("Policies after rm = %v", names)
	}
}

package catalog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// TestFreezesAndTiming: freezes and a release's timing are signed catalog
// state that an agent's client reads after a refresh; removing the last
// freeze drops the target.
func TestFreezesAndTiming(t *testing.T) {
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"a.txt": "a"}, "stable")
	from := time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)
	update := func(fn func(r *catalog.Repo) error) error {
		_, err := catalog.Update(t.Context(), s, c.keys, catalog.UpdateOptions{}, fn)
		return err
	}
	var got catalog.Freeze
	if err := update(func(r *catalog.Repo) error {
		var err error
		got, err = r.AddFreeze(t.Context(), catalog.Freeze{From: from, To: from.Add(72 * time.Hour), Reason: "holidays"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got.ID != "f1" {
		t.Errorf("first freeze id = %q", got.ID)
	}
	if err := update(func(r *catalog.Repo) error {
		_, err := r.AddFreeze(t.Context(), catalog.Freeze{From: from, To: from})
		return err
	}); err == nil {
		t.Error("empty freeze accepted")
	}
	at := time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)
	timing := catalog.Timing{Urgent: true, ActivateAt: at, Activate: []string{"Sun 02:00-04:00"}, DeliverBy: at.Add(-time.Hour)}
	if err := update(func(r *catalog.Repo) error { return r.SetTiming("app", "1.0", timing) }); err != nil {
		t.Fatal(err)
	}

	cl := c.client(t, t.TempDir())
	fs, err := cl.Freezes()
	if err != nil || len(fs) != 1 || fs[0].ID != "f1" || !fs[0].From.Equal(from) || fs[0].Reason != "holidays" {
		t.Fatalf("client freezes = %+v, %v", fs, err)
	}
	e, err := cl.Entry("app", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Urgent || !e.ActivateAt.Equal(at) || len(e.Activate) != 1 || !e.DeliverBy.Equal(timing.DeliverBy) || len(e.Channels) != 1 {
		t.Errorf("entry = %+v", e)
	}
	// The freeze list is a stored target like any other: readable and checked.
	if _, err := cl.Target(t.Context(), catalog.FreezesKey, 1<<20); err != nil {
		t.Errorf("freezes target: %v", err)
	}

	if err := update(func(r *catalog.Repo) error { return r.RemoveFreeze(t.Context(), "nope") }); !errors.Is(err, catalog.ErrNoFreeze) {
		t.Errorf("remove unknown freeze: %v", err)
	}
	if err := update(func(r *catalog.Repo) error { return r.RemoveFreeze(t.Context(), "f1") }); err != nil {
		t.Fatal(err)
	}
	cl = c.client(t, t.TempDir())
	if fs, err := cl.Freezes(); err != nil || len(fs) != 0 {
		t.Errorf("after remove: %+v, %v", fs, err)
	}
}

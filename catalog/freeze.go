package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// FreezesKey is the signed target that lists the catalog's freezes.
const FreezesKey = "catalog/freezes.json"

// Limits on freezes: a catalog lists few, and an agent reads them on every
// pass.
const (
	MaxFreezes         = 256
	MaxActivateWindows = 32
	maxFreezeReason    = 256
)

// Freeze is a catalog-wide blackout: from From (inclusive) to To
// (exclusive) no release activates and no wave opens, except urgent
// releases.
type Freeze struct {
	ID     string    `json:"id"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// freezeDoc is the target's content. The same JSON rides in the target's
// custom field, so agents read freezes from the signed targets metadata
// without fetching a file; the file exists for verify, mirrors and people.
type freezeDoc struct {
	Freezes []Freeze `json:"freezes"`
}

// ErrNoFreeze means remove named a freeze the catalog does not list.
var ErrNoFreeze = errors.New("no such freeze")

// CheckFreeze validates one freeze.
func CheckFreeze(f Freeze) error {
	switch {
	case f.From.IsZero() || f.To.IsZero():
		return errors.New("freeze needs --from and --to")
	case !f.To.After(f.From):
		return fmt.Errorf("freeze ends (%s) at or before it starts (%s)", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	case len(f.Reason) > maxFreezeReason:
		return fmt.Errorf("freeze reason is %d bytes, at most %d", len(f.Reason), maxFreezeReason)
	case strings.ContainsAny(f.Reason, "\r\n"):
		return errors.New("freeze reason has a line break")
	}
	return nil
}

func freezesOf(tf *metadata.TargetFiles) ([]Freeze, error) {
	if tf == nil || tf.Custom == nil {
		return nil, nil
	}
	var doc freezeDoc
	if err := json.Unmarshal(*tf.Custom, &doc); err != nil {
		return nil, fmt.Errorf("target %s: bad freezes: %w", FreezesKey, err)
	}
	if len(doc.Freezes) > MaxFreezes {
		return nil, fmt.Errorf("target %s: %d freezes, at most %d", FreezesKey, len(doc.Freezes), MaxFreezes)
	}
	return doc.Freezes, nil
}

// Freezes lists the catalog's freezes, sorted by start.
func (r *Repo) Freezes() ([]Freeze, error) {
	return freezesOf(r.targets.Signed.Targets[FreezesKey])
}

// AddFreeze adds f, giving it the next free ID ("f1", "f2", …) when it has
// none, and returns it as stored.
func (r *Repo) AddFreeze(ctx context.Context, f Freeze) (Freeze, error) {
	if err := CheckFreeze(f); err != nil {
		return f, err
	}
	fs, err := r.Freezes()
	if err != nil {
		return f, err
	}
	if len(fs) >= MaxFreezes {
		return f, fmt.Errorf("the catalog lists %d freezes, at most %d: remove old ones", len(fs), MaxFreezes)
	}
	if f.ID == "" {
		for n := 1; ; n++ {
			id := fmt.Sprintf("f%d", n)
			if !slices.ContainsFunc(fs, func(x Freeze) bool { return x.ID == id }) {
				f.ID = id
				break
			}
		}
	} else if slices.ContainsFunc(fs, func(x Freeze) bool { return x.ID == f.ID }) {
		return f, fmt.Errorf("freeze %s exists", f.ID)
	}
	f.From, f.To = f.From.UTC(), f.To.UTC()
	return f, r.setFreezes(ctx, append(fs, f))
}

// RemoveFreeze removes the freeze with id.
func (r *Repo) RemoveFreeze(ctx context.Context, id string) error {
	fs, err := r.Freezes()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(fs, func(x Freeze) bool { return x.ID == id })
	if i < 0 {
		return fmt.Errorf("freeze %q: %w", id, ErrNoFreeze)
	}
	return r.setFreezes(ctx, slices.Delete(fs, i, i+1))
}

// setFreezes stores the list as a signed target: the bytes first (a
// commit that loses its race leaves an unsigned copy for `catalog gc`),
// then the target entry, which Commit signs.
func (r *Repo) setFreezes(ctx context.Context, fs []Freeze) error {
	slices.SortStableFunc(fs, func(a, b Freeze) int { return a.From.Compare(b.From) })
	if len(fs) == 0 {
		delete(r.targets.Signed.Targets, FreezesKey)
		r.dirty = true
		return nil
	}
	b, err := json.Marshal(freezeDoc{Freezes: fs})
	if err != nil {
		return err
	}
	if err := PutTarget(ctx, r.store, FreezesKey, b); err != nil {
		return err
	}
	tf, err := metadata.TargetFile().FromBytes(FreezesKey, b, "sha256")
	if err != nil {
		return err
	}
	raw := json.RawMessage(b)
	tf.Custom = &raw
	r.targets.Signed.Targets[FreezesKey] = tf
	r.dirty = true
	return nil
}

// Freezes lists the freezes of the loaded catalog.
func (c *Client) Freezes() ([]Freeze, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	return freezesOf(up.GetTopLevelTargets()[FreezesKey])
}

package catalog

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/release"
)

// Signage schedules are signed targets under playlists/NAME.json, like
// fleet policy documents: the catalog stores and signs their bytes; what
// they mean (policy.Playlist) is checked by the CLI that writes them and
// again by every agent, which refuses a bad one whole and keeps the last
// good one.

// PlaylistPrefix is the directory of signage schedules.
const PlaylistPrefix = "playlists/"

// PlaylistKey is the target path of the signage schedule name.
func PlaylistKey(name string) string { return PlaylistPrefix + name + ".json" }

func playlistName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, PlaylistPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, ".json")
	if !ok || release.ValidateName("schedule name", name) != nil {
		return "", false
	}
	return name, true
}

func playlistNames(targets map[string]*metadata.TargetFiles) []string {
	var out []string
	for key := range targets {
		if n, ok := playlistName(key); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Playlists lists the signage schedules in the catalog, by name.
func (r *Repo) Playlists() []string { return playlistNames(r.targets.Signed.Targets) }

// SetPlaylist records the schedule doc, whose bytes are already in the
// store under its hash-prefixed name (PutHashedTarget), replacing any
// earlier version. Setting the same bytes again changes nothing.
func (r *Repo) SetPlaylist(name string, doc []byte) error {
	if err := release.ValidateName("schedule name", name); err != nil {
		return err
	}
	key := PlaylistKey(name)
	tf, err := metadata.TargetFile().FromBytes(key, doc, "sha256")
	if err != nil {
		return err
	}
	if old, ok := r.targets.Signed.Targets[key]; ok && old.Length == tf.Length && old.Hashes.Equal(tf.Hashes) {
		return nil
	}
	r.targets.Signed.Targets[key] = tf
	r.dirty = true
	return nil
}

// RemovePlaylist removes the schedule name; agents keep playing what is
// on their screens and report the schedule missing.
func (r *Repo) RemovePlaylist(name string) error {
	key := PlaylistKey(name)
	if _, ok := r.targets.Signed.Targets[key]; !ok {
		return fmt.Errorf("signage schedule %q is not in the catalog: %w", name, ErrNotFound)
	}
	delete(r.targets.Signed.Targets, key)
	r.dirty = true
	return nil
}

// Playlists lists the signage schedules of the loaded catalog.
func (c *Client) Playlists() ([]string, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	return playlistNames(up.GetTopLevelTargets()), nil
}

// Playlist fetches the signed schedule name (at most limit bytes).
func (c *Client) Playlist(ctx context.Context, name string, limit int64) ([]byte, error) {
	return c.Target(ctx, PlaylistKey(name), limit)
}

// PlaylistDigest is the signed SHA-256 (hex) of the schedule name, so an
// agent can skip fetching one it already has.
func (c *Client) PlaylistDigest(name string) (string, error) {
	tf, _, err := c.targetKeys(PlaylistKey(name), -1)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(tf.Hashes["sha256"]), nil
}

// PublishPlaylist signs doc into the catalog as the schedule name: the
// content-addressed copy first, then the signed commit (Update, a
// compare-and-swap: of two writers at once one retries on the other's
// catalog), then the plain copy for people.
func PublishPlaylist(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, doc []byte) error {
	if err := release.ValidateName("schedule name", name); err != nil {
		return err
	}
	key := PlaylistKey(name)
	if err := PutHashedTarget(ctx, store, key, doc); err != nil {
		return err
	}
	if _, err := Update(ctx, store, keys, opts, func(r *Repo) error { return r.SetPlaylist(name, doc) }); err != nil {
		return err
	}
	return putBytes(ctx, store, key, doc)
}

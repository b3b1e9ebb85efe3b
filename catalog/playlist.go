package catalog

import "context"

// Signage schedules are signed targets under playlists/NAME.json, like
// fleet policy documents (signeddoc.go); what they mean (policy.Playlist)
// is checked by the CLI that writes them and again by every agent, which
// refuses a bad one whole and keeps the last good one.

// PlaylistPrefix is the directory of signage schedules.
const PlaylistPrefix = "playlists/"

// PlaylistKey is the target path of the signage schedule name.
func PlaylistKey(name string) string { return playlistDocs.key(name) }

// Playlists lists the signage schedules in the catalog, by name.
func (r *Repo) Playlists() []string { return playlistDocs.names(r.targets.Signed.Targets) }

// SetPlaylist records the schedule doc, whose bytes are already in the
// store under its hash-prefixed name (PutHashedTarget), replacing any
// earlier version. Setting the same bytes again changes nothing.
func (r *Repo) SetPlaylist(name string, doc []byte) error { return r.setDoc(playlistDocs, name, doc) }

// RemovePlaylist removes the schedule name; agents keep playing what is
// on their screens and report the schedule missing.
func (r *Repo) RemovePlaylist(name string) error { return r.removeDoc(playlistDocs, name) }

// Playlists lists the signage schedules of the loaded catalog.
func (c *Client) Playlists() ([]string, error) { return c.docNames(playlistDocs) }

// Playlist fetches the signed schedule name (at most limit bytes).
func (c *Client) Playlist(ctx context.Context, name string, limit int64) ([]byte, error) {
	return c.Target(ctx, PlaylistKey(name), limit)
}

// PlaylistDigest is the signed SHA-256 (hex) of the schedule name, so an
// agent can skip fetching one it already has.
func (c *Client) PlaylistDigest(name string) (string, error) { return c.docDigest(playlistDocs, name) }

// PublishPlaylist signs doc into the catalog as the schedule name
// (publishDoc).
func PublishPlaylist(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, doc []byte) error {
	return publishDoc(ctx, store, keys, opts, playlistDocs, name, doc)
}

package catalog

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/swarmship/swarmship/internal/delta"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/release"
)

// Limits on what a catalog may contain. They keep a hostile catalog from
// exhausting an agent's memory or disk before anything is verified.
const (
	MaxManifestSize = 16 << 20 // bytes of one release manifest
	MaxTorrentSize  = 32 << 20 // bytes of one .torrent file
	MaxFiles        = 100_000  // files in one release
	MaxPathLen      = 4096     // bytes of a file path inside a release
	MaxReleaseSize  = 1 << 44  // 16 TiB
	manifestVersion = 1
)

// ManifestFile is one file of a release, with the SHA-256 that an agent
// checks before it activates the release.
type ManifestFile struct {
	Path   string `json:"path"` // slash-separated, relative to the release root
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// Manifest describes one immutable release: name@version. It is a signed
// TUF target, so every field is covered by the catalog's signatures.
type Manifest struct {
	Format      int               `json:"format"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Files       []ManifestFile    `json:"files"`
	TotalSize   int64             `json:"total_size"`
	InfoHash    string            `json:"infohash"` // BitTorrent v1 infohash, lowercase hex
	PieceLength int64             `json:"piece_length"`
	Created     time.Time         `json:"created"`
	Expires     time.Time         `json:"expires,omitzero"`
	Labels      map[string]string `json:"labels,omitempty"`
	Tenant      string            `json:"tenant,omitempty"`
	Regions     []string          `json:"regions,omitempty"` // allowed regions; empty means any
	// Delta, when present, says where this release's bytes lie in an earlier
	// version of the same name (see internal/delta). Signed like every field.
	Delta *delta.Hints `json:"delta,omitempty"`
	// Media, when present, marks a media release (publish --media): its
	// segments are piece-aligned with pad files in the torrent (media.go).
	Media *Media `json:"media,omitempty"`
	// Watermark, when present, lists the A/B variants of each media
	// segment and the signed site code table that picks one per site
	// (sitecodes.go).
	Watermark *Watermark `json:"watermark,omitempty"`
}

// ManifestKey is where the manifest of name@version lives in a catalog.
func ManifestKey(name, version string) string {
	return "releases/" + name + "/" + version + ".json"
}

// TorrentKey is where the .torrent of name@version lives in a catalog.
func TorrentKey(name, version string) string {
	return "torrents/" + name + "/" + version + ".torrent"
}

// StagingPrefix holds uploads of publishes that have not committed yet
// (or never will: `catalog gc` removes those). Nothing under it is signed.
const StagingPrefix = "staging/"

// StagingKey is where publish id of name@version stages its objects: id
// starts with the UTC time the publish began, so a human can tell an
// abandoned upload at a glance; gc goes by the objects' write times.
func StagingKey(name, version, id string) string {
	return StagingPrefix + name + "/" + version + "/" + id + "/"
}

// DataPrefix is the key prefix of the payload of name@version; it ends in "/".
func DataPrefix(name, version string) string {
	return "data/" + name + "/" + version + "/"
}

// WebSeedBase is the key prefix that a BEP 19 url-list points at. Torrents
// are named after their version, so a client appends "<version>/<path>".
func WebSeedBase(name string) string {
	return "data/" + name + "/"
}

// ValidateFilePath checks one file path inside a release. It is the one
// rule for publish (what may be signed) and the web seed (what may be
// served), so a release that publishes is always servable.
func ValidateFilePath(p string) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("file path is longer than %d bytes", MaxPathLen)
	}
	if err := CleanKey(p); err != nil {
		return fmt.Errorf("file path: %w", err)
	}
	for _, c := range strings.Split(p, "/") {
		if err := release.ValidatePathComponent(c); err != nil {
			return fmt.Errorf("file path %q: %w", p, err)
		}
	}
	return nil
}

// Validate checks a manifest as a whole. Agents call it on every manifest
// they fetch, after TUF has checked its hash, and publish calls it before
// signing: a valid signature on nonsense is still nonsense.
func (m *Manifest) Validate() error {
	if m.Format != manifestVersion {
		return fmt.Errorf("manifest format %d is not supported (want %d)", m.Format, manifestVersion)
	}
	if err := release.ValidateName("name", m.Name); err != nil {
		return err
	}
	if err := release.ValidateName("version", m.Version); err != nil {
		return err
	}
	if len(m.Files) == 0 {
		return errors.New("manifest lists no files")
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("manifest lists %d files, more than %d", len(m.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(m.Files))
	var total int64
	for _, f := range m.Files {
		if err := ValidateFilePath(f.Path); err != nil {
			return err
		}
		// A file "a" and a file "a/b" cannot both exist on disk.
		lower := strings.ToLower(f.Path)
		if seen[lower] {
			return fmt.Errorf("file path %q appears twice (paths are compared case-insensitively)", f.Path)
		}
		seen[lower] = true
		if f.Size < 0 || f.Size > MaxReleaseSize {
			return fmt.Errorf("file %q has an invalid size %d", f.Path, f.Size)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return fmt.Errorf("file %q has an invalid sha256 %q", f.Path, f.SHA256)
		}
		total += f.Size
		if total > MaxReleaseSize {
			return fmt.Errorf("release is larger than %d bytes", int64(MaxReleaseSize))
		}
	}
	for _, f := range m.Files {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if seen[strings.ToLower(dir)] {
				return fmt.Errorf("file %q is inside %q, which is also a file", f.Path, dir)
			}
		}
	}
	if total != m.TotalSize {
		return fmt.Errorf("total_size %d does not match the files' sizes (%d)", m.TotalSize, total)
	}
	if b, err := hex.DecodeString(m.InfoHash); err != nil || len(b) != 20 || strings.ToLower(m.InfoHash) != m.InfoHash {
		return fmt.Errorf("invalid infohash %q", m.InfoHash)
	}
	if m.PieceLength < 16<<10 || m.PieceLength > 64<<20 || m.PieceLength&(m.PieceLength-1) != 0 {
		return fmt.Errorf("invalid piece length %d", m.PieceLength)
	}
	if m.Created.IsZero() {
		return errors.New("manifest has no creation time")
	}
	if !m.Expires.IsZero() && !m.Expires.After(m.Created) {
		return errors.New("manifest expires before it was created")
	}
	for _, r := range m.Regions {
		if err := release.ValidateName("region", r); err != nil {
			return err
		}
	}
	if m.Media != nil {
		if err := m.validateMedia(); err != nil {
			return err
		}
		if m.Delta != nil {
			// Hints address the torrent stream, which pads shift.
			return errors.New("a media release carries no delta hints")
		}
	}
	if m.Delta != nil {
		if err := release.ValidateName("delta base version", m.Delta.Base); err != nil {
			return err
		}
		if m.Delta.Base == m.Version {
			return errors.New("delta hints name the release itself as their base")
		}
		if err := m.Delta.Validate(m.TotalSize); err != nil {
			return err
		}
	}
	if m.Watermark != nil {
		if err := m.Watermark.validate(m.Files); err != nil {
			return err
		}
	}
	return nil
}

// Expired reports whether the release is past its expiry at now.
func (m *Manifest) Expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// Ref returns the release's name@version.
func (m *Manifest) Ref() release.Ref { return release.Ref{Name: m.Name, Version: m.Version} }

// MarshalManifest encodes m canonically (indented, stable field order).
func MarshalManifest(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates a manifest, refusing unknown fields
// and trailing data.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is larger than %d bytes", MaxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode manifest: trailing data")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid manifest: %w", err)
	}
	return &m, nil
}

// SameContent reports whether two manifests describe the same bytes: the
// same files with the same hashes and the same torrent. Publishing the same
// release twice is idempotent only when this holds.
func (m *Manifest) SameContent(o *Manifest) bool {
	return m.Name == o.Name && m.Version == o.Version && m.InfoHash == o.InfoHash &&
		m.PieceLength == o.PieceLength && slices.Equal(m.Files, o.Files) && sameWatermark(m.Watermark, o.Watermark)
}

func sameWatermark(a, b *Watermark) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Codes == b.Codes && slices.Equal(a.Segments, b.Segments)
}

// EntryState is the mutable, signed state of a release in the catalog:
// which channels point at it and whether it is yanked. It rides in the
// TUF target's custom field, so promote and yank are one atomic targets
// update and never rewrite the immutable manifest.
type EntryState struct {
	Channels []string `json:"channels,omitempty"`
	Yanked   bool     `json:"yanked,omitempty"`
	Timing
}

// Timing is when a release may switch on and by when sites should have
// it. It is entry state, not manifest: the same bytes can be rescheduled
// or made urgent after publish (`catalog promote --urgent`, `catalog
// schedule`) without a new version, and it is signed like channels.
// Agents older than these fields ignore them and activate at once.
type Timing struct {
	// Urgent releases activate during catalog freezes and download
	// despite metered links and low battery.
	Urgent bool `json:"urgent,omitempty"`
	// ActivateAt is the instant the release may go live; zero means any.
	ActivateAt time.Time `json:"activate_at,omitzero"`
	// Activate are weekly windows, in each site's time zone, in which the
	// switch may happen ("Sun 02:00-04:00"); empty means any time.
	Activate []string `json:"activate,omitempty"`
	// DeliverBy is when every site should hold the bytes.
	DeliverBy time.Time `json:"deliver_by,omitzero"`
}

// IsZero reports whether no timing is set.
func (t Timing) IsZero() bool {
	return !t.Urgent && t.ActivateAt.IsZero() && len(t.Activate) == 0 && t.DeliverBy.IsZero()
}

// Release is one catalog entry as listed from signed targets metadata.
type Release struct {
	release.Ref
	EntryState
	ManifestLength int64
}

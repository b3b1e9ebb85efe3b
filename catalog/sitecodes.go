package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/sitecode"
)

// Site code tables are signed targets under codes/NAME.json: which
// codeword (and so which A/B variant of each segment) every site of a
// watermarked media release gets (internal/sitecode). A watermarked
// manifest names its table; agents and `swarmship trace` read it from the
// signed catalog like any target. Every agent of the tenant can read the
// whole table: it is not secret (docs/security.md says what follows).

// MaxCodeTableSize bounds a code table target (10,000 sites of 4,096 bits
// would be ~41 MB; real tables are far smaller).
const MaxCodeTableSize = 48 << 20

// CodesPrefix is the directory of site code tables.
const CodesPrefix = "codes/"

// CodeTableKey is the target path of the site code table name.
func CodeTableKey(name string) string { return CodesPrefix + name + ".json" }

// SetCodeTable records the table doc, whose bytes are already in the
// store under their hash-prefixed name (PutHashedTarget).
func (r *Repo) SetCodeTable(name string, doc []byte) error {
	if err := release.ValidateName("code table name", name); err != nil {
		return err
	}
	if _, err := sitecode.Parse(doc); err != nil {
		return err
	}
	key := CodeTableKey(name)
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

// CodeTable reads the signed table name from the loaded catalog; nil when
// there is none.
func (r *Repo) CodeTable(ctx context.Context, name string) (*sitecode.Table, error) {
	tf, ok := r.targets.Signed.Targets[CodeTableKey(name)]
	if !ok {
		return nil, nil
	}
	b, err := readTargetCopy(ctx, r.store, tf, TargetKeys(tf)[0])
	if err != nil {
		return nil, err
	}
	return sitecode.Parse(b)
}

// ChangeCodeTable applies fn to the signed table name (an empty table of
// fn's choosing when there is none: fn gets nil) and signs the result
// through Update's compare-and-swap; fn may run more than once.
func ChangeCodeTable(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, fn func(*sitecode.Table) (*sitecode.Table, error)) (*sitecode.Table, error) {
	if err := release.ValidateName("code table name", name); err != nil {
		return nil, err
	}
	var out *sitecode.Table
	_, err := Update(ctx, store, keys, opts, func(r *Repo) error {
		cur, err := r.CodeTable(ctx, name)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		doc, err := next.Marshal()
		if err != nil {
			return err
		}
		if err := PutHashedTarget(ctx, store, CodeTableKey(name), doc); err != nil {
			return err
		}
		out = next
		return r.SetCodeTable(name, doc)
	})
	if err != nil {
		return nil, err
	}
	doc, _ := out.Marshal()
	// The plain name, for people and foreign tools, after the commit.
	return out, putBytes(ctx, store, CodeTableKey(name), doc)
}

// CodeTable fetches and checks the signed site code table name.
func (c *Client) CodeTable(ctx context.Context, name string) (*sitecode.Table, []byte, error) {
	b, err := c.Target(ctx, CodeTableKey(name), MaxCodeTableSize)
	if err != nil {
		return nil, nil, fmt.Errorf("site code table %s: %w", name, err)
	}
	t, err := sitecode.Parse(b)
	return t, b, err
}

// Watermark says that a media release comes in two pre-watermarked
// variants of each segment. The torrent holds both (each an ordinary file
// of the manifest, with its own signed SHA-256); an agent fetches, per
// segment, the variant its site's codeword picks and places it at Path.
type Watermark struct {
	// Codes names the signed site code table (codes/NAME.json).
	Codes string `json:"codes"`
	// Segments in position order: position i carries codeword bit
	// i mod the table's length.
	Segments []WatermarkSegment `json:"segments"`
}

// WatermarkSegment is one segment position.
type WatermarkSegment struct {
	Path string `json:"path"` // where the site's copy has it (playlists name this)
	A    string `json:"a"`    // manifest file holding variant A
	B    string `json:"b"`    // manifest file holding variant B
}

// VariantPrefix is where publish puts the variants inside a release:
// variants/a/<path> and variants/b/<path>.
const VariantPrefix = "variants/"

// maxSegments bounds the positions of one release.
const maxSegments = 100_000

// validate checks the watermark against the manifest's files: both
// variants of every position are files of the release with different
// bytes, and every position's path is unique and not a torrent file.
func (w *Watermark) validate(files []ManifestFile) error {
	if err := release.ValidateName("watermark code table", w.Codes); err != nil {
		return err
	}
	if len(w.Segments) == 0 || len(w.Segments) > maxSegments {
		return fmt.Errorf("watermark: %d segments, want 1 to %d", len(w.Segments), maxSegments)
	}
	byPath := make(map[string]ManifestFile, len(files))
	for _, f := range files {
		byPath[f.Path] = f
	}
	used := map[string]bool{}
	for _, s := range w.Segments {
		if err := ValidateFilePath(s.Path); err != nil {
			return fmt.Errorf("watermark: %w", err)
		}
		if strings.HasPrefix(s.Path, VariantPrefix) {
			return fmt.Errorf("watermark: segment path %q lies under %s", s.Path, VariantPrefix)
		}
		if _, ok := byPath[s.Path]; ok {
			return fmt.Errorf("watermark: segment path %q is also a file of the torrent", s.Path)
		}
		for _, p := range []string{s.Path, s.A, s.B} {
			k := strings.ToLower(p)
			if used[k] {
				return fmt.Errorf("watermark: path %q appears twice", p)
			}
			used[k] = true
		}
		a, okA := byPath[s.A]
		b, okB := byPath[s.B]
		if !okA || !okB {
			return fmt.Errorf("watermark: segment %q: variants %q and %q must both be files of the release", s.Path, s.A, s.B)
		}
		if a.SHA256 == b.SHA256 {
			return fmt.Errorf("watermark: segment %q: variants A and B have the same bytes (no bit to read)", s.Path)
		}
		for dir := path.Dir(s.Path); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; ok {
				return fmt.Errorf("watermark: segment %q is inside %q, which is a file", s.Path, dir)
			}
		}
	}
	return nil
}

// errNoWatermark is returned for releases without variants.
var errNoWatermark = errors.New("release has no watermark variants")

// VariantFiles returns, for a watermarked manifest, the index of each
// position's A and B file in m.Files.
func (m *Manifest) VariantFiles() (a, b []int, err error) {
	if m.Watermark == nil {
		return nil, nil, errNoWatermark
	}
	idx := make(map[string]int, len(m.Files))
	for i, f := range m.Files {
		idx[f.Path] = i
	}
	for _, s := range m.Watermark.Segments {
		a = append(a, idx[s.A])
		b = append(b, idx[s.B])
	}
	return a, b, nil
}

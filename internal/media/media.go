// Package media reads the playlists of an HLS or DASH release (publish
// --media) and lists the files they reference: playlists and segments
// (init segments included). Parsing is strict and bounded: every
// reference must name a file inside the release (no URLs, no absolute
// paths, no ".."), every referenced file must exist, and sizes and counts
// have named limits, since a playlist is input from whoever built the
// release. It does no I/O of its own: files come from an fs.FS.
package media

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/swarmship/swarmship/internal/release"
)

// Limits of what Parse reads.
const (
	MaxPlaylistSize = 4 << 20 // bytes of one m3u8 or mpd
	MaxPlaylists    = 1000    // playlist files in one release
	MaxSegments     = 500_000 // segment references in one release, counted before duplicates go
	MaxURILen       = 4096    // bytes of one reference
	MaxLineLen      = 64 << 10
)

// Formats.
const (
	HLS  = "hls"
	DASH = "dash"
)

// Stream is what the playlists of a release reference.
type Stream struct {
	Format string
	// Playlists are the release's playlist files, top-level ones first,
	// then by path.
	Playlists []string
	// Segments are the distinct segment and init-segment files, by path.
	Segments []string
}

// IsPlaylist reports whether a release path is a playlist by its name.
func IsPlaylist(p string) bool {
	return formatOf(p) != ""
}

func formatOf(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".m3u8":
		return HLS
	case ".mpd":
		return DASH
	}
	return ""
}

// Parse reads every playlist among files (release paths, slash-separated)
// from fsys and returns what they reference. All playlists must be of one
// format; a release without any is refused.
func Parse(fsys fs.FS, files []string) (*Stream, error) {
	var lists []string
	format := ""
	for _, f := range files {
		ff := formatOf(f)
		if ff == "" {
			continue
		}
		if format != "" && ff != format {
			return nil, fmt.Errorf("media: the release mixes HLS and DASH playlists (%s)", f)
		}
		format = ff
		lists = append(lists, f)
	}
	if len(lists) == 0 {
		return nil, errors.New("media: the release has no playlist (.m3u8 or .mpd)")
	}
	if len(lists) > MaxPlaylists {
		return nil, fmt.Errorf("media: %d playlists, more than %d", len(lists), MaxPlaylists)
	}
	slices.SortFunc(lists, func(a, b string) int {
		da, db := strings.Count(a, "/"), strings.Count(b, "/")
		if da != db {
			return da - db
		}
		return strings.Compare(a, b)
	})
	r := &refs{fsys: fsys, playlists: map[string]bool{}, segments: map[string]bool{}}
	for _, l := range lists {
		r.playlists[l] = true
	}
	for _, l := range lists {
		b, err := readLimited(fsys, l)
		if err != nil {
			return nil, err
		}
		if format == HLS {
			err = r.hls(l, b)
		} else {
			err = r.dash(l, b)
		}
		if err != nil {
			return nil, fmt.Errorf("media: %s: %w", l, err)
		}
	}
	if len(r.segments) == 0 {
		return nil, errors.New("media: the playlists reference no segments")
	}
	s := &Stream{Format: format, Playlists: lists}
	for p := range r.segments {
		s.Segments = append(s.Segments, p)
	}
	slices.Sort(s.Segments)
	return s, nil
}

func readLimited(fsys fs.FS, p string) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPlaylistSize+1))
	if err != nil {
		return nil, fmt.Errorf("media: read %s: %w", p, err)
	}
	if len(b) > MaxPlaylistSize {
		return nil, fmt.Errorf("media: %s is larger than %d bytes", p, MaxPlaylistSize)
	}
	return b, nil
}

// refs collects references while the playlists are read.
type refs struct {
	fsys      fs.FS
	playlists map[string]bool
	segments  map[string]bool
	count     int
}

// resolve turns a reference found in the playlist at from (or under the
// base directory dir, itself already resolved) into a release path.
func resolve(dir, uri string) (string, error) {
	if uri == "" {
		return "", errors.New("empty reference")
	}
	if len(uri) > MaxURILen {
		return "", fmt.Errorf("reference longer than %d bytes", MaxURILen)
	}
	if strings.ContainsAny(uri, "\\?#%\x00") || strings.Contains(uri, "://") || strings.HasPrefix(uri, "//") {
		return "", fmt.Errorf("reference %q is a URL or has a query, fragment or escape: only relative paths inside the release are allowed", uri)
	}
	if i := strings.IndexByte(uri, ':'); i >= 0 && !strings.Contains(uri[:i], "/") {
		return "", fmt.Errorf("reference %q has a URL scheme: only relative paths inside the release are allowed", uri)
	}
	if strings.HasPrefix(uri, "/") {
		return "", fmt.Errorf("reference %q is an absolute path: only relative paths inside the release are allowed", uri)
	}
	for _, c := range strings.Split(strings.TrimSuffix(uri, "/"), "/") {
		if c == ".." {
			return "", fmt.Errorf("reference %q leaves its directory (\"..\"): only paths inside the release are allowed", uri)
		}
	}
	p := path.Join(dir, uri)
	for _, c := range strings.Split(p, "/") {
		if err := release.ValidatePathComponent(c); err != nil {
			return "", fmt.Errorf("reference %q: %w", uri, err)
		}
	}
	return p, nil
}

// segment records a segment reference after checking that it exists.
func (r *refs) segment(p string) error {
	r.count++
	if r.count > MaxSegments {
		return fmt.Errorf("more than %d segment references", MaxSegments)
	}
	if r.segments[p] {
		return nil
	}
	if r.playlists[p] {
		return fmt.Errorf("%s is referenced as a segment but is a playlist", p)
	}
	if err := r.exists(p); err != nil {
		return err
	}
	r.segments[p] = true
	return nil
}

// playlist checks a reference to another playlist: a playlist file of the
// release (every one of them is parsed anyway).
func (r *refs) playlist(p string) error {
	if !r.playlists[p] {
		if err := r.exists(p); err != nil {
			return err
		}
		return fmt.Errorf("%s is referenced as a playlist but is not named .m3u8", p)
	}
	return nil
}

func (r *refs) exists(p string) error {
	st, err := fs.Stat(r.fsys, p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("references %s, which is not in the release", p)
		}
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("references %s, which is not a regular file", p)
	}
	return nil
}

package catalog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Media is the signed media section of a manifest (`publish --media`): what
// kind of stream the release holds, its playlists, and where each segment
// lies in the torrent. Agents serving players (media.listen), schedules and
// watermark variants read it; nothing in it is trusted unless the manifest
// validated, which recomputes every segment's pieces from the file list.
//
// Layout rule (one rule for publish, agents and foreign clients): the files
// are in manifest order; each file listed in Segments starts on a piece
// boundary, preceded by a BEP 47 pad file of zeros (torrent path
// ".pad/<N>", N its length) when the file before it ends inside a piece.
// Pad files are in the v1 torrent only, never in Files: they are not
// payload. Any other file follows the previous one directly.
type Media struct {
	// Format is "hls" or "dash".
	Format string `json:"format"`
	// Playlists are the release's playlist files (m3u8 or mpd), the entry
	// point first (HLS master playlist, DASH MPD).
	Playlists []string `json:"playlists"`
	// Segments are the media segments and init segments, in file order.
	Segments []MediaSegment `json:"segments"`
}

// MediaSegment is one segment file and the pieces that hold it: pieces
// FirstPiece .. FirstPiece+Pieces-1 hold its bytes, starting at the first
// piece's first byte, so the segment verifies and serves on its own.
type MediaSegment struct {
	Path       string `json:"path"`
	FirstPiece int    `json:"first_piece"`
	Pieces     int    `json:"pieces"`
}

// Media formats.
const (
	MediaHLS  = "hls"
	MediaDASH = "dash"
)

// MaxMediaPlaylists bounds the playlists of one media release.
const MaxMediaPlaylists = 1000

// Layout returns each file's offset in the torrent's byte stream and the
// stream's length, pad bytes included (see Media). Without a media section
// files are back to back and the length is TotalSize.
func (m *Manifest) Layout() (offsets []int64, torrentSize int64) {
	offsets = make([]int64, len(m.Files))
	var segs map[string]bool
	if m.Media != nil {
		segs = make(map[string]bool, len(m.Media.Segments))
		for _, s := range m.Media.Segments {
			segs[s.Path] = true
		}
	}
	var off int64
	for i, f := range m.Files {
		if segs[f.Path] && m.PieceLength > 0 {
			off = alignUp(off, m.PieceLength)
		}
		offsets[i] = off
		off += f.Size
	}
	return offsets, off
}

func alignUp(off, pl int64) int64 {
	if r := off % pl; r != 0 {
		return off + pl - r
	}
	return off
}

// validateMedia checks the media section against the file list: known
// format, playlists and segments that are files of the release (each once,
// none both), non-empty segments, and first pieces and piece counts that
// match the layout rule.
func (m *Manifest) validateMedia() error {
	md := m.Media
	if md.Format != MediaHLS && md.Format != MediaDASH {
		return fmt.Errorf("media format %q is not hls or dash", md.Format)
	}
	if len(md.Playlists) == 0 {
		return errors.New("media section lists no playlists")
	}
	if len(md.Playlists) > MaxMediaPlaylists {
		return fmt.Errorf("media section lists %d playlists, more than %d", len(md.Playlists), MaxMediaPlaylists)
	}
	if len(md.Segments) == 0 {
		return errors.New("media section lists no segments")
	}
	if len(md.Segments) > len(m.Files) {
		return fmt.Errorf("media section lists %d segments, the release has %d files", len(md.Segments), len(m.Files))
	}
	index := make(map[string]int, len(m.Files))
	for i, f := range m.Files {
		index[f.Path] = i
	}
	role := map[string]string{}
	for _, p := range md.Playlists {
		if _, ok := index[p]; !ok {
			return fmt.Errorf("media playlist %q is not a file of the release", p)
		}
		if role[p] != "" {
			return fmt.Errorf("media playlist %q is listed twice", p)
		}
		role[p] = "playlist"
	}
	offsets, _ := m.Layout()
	prev := -1
	for _, s := range md.Segments {
		i, ok := index[s.Path]
		if !ok {
			return fmt.Errorf("media segment %q is not a file of the release", s.Path)
		}
		if r := role[s.Path]; r != "" {
			return fmt.Errorf("media segment %q is also listed as a %s", s.Path, r)
		}
		role[s.Path] = "segment"
		if i <= prev {
			return fmt.Errorf("media segment %q is out of file order", s.Path)
		}
		prev = i
		size := m.Files[i].Size
		if size == 0 {
			return fmt.Errorf("media segment %q is empty", s.Path)
		}
		first := offsets[i] / m.PieceLength
		count := (size + m.PieceLength - 1) / m.PieceLength
		if int64(s.FirstPiece) != first || int64(s.Pieces) != count {
			return fmt.Errorf("media segment %q: pieces %d+%d, the layout gives %d+%d", s.Path, s.FirstPiece, s.Pieces, first, count)
		}
	}
	return nil
}

// IsPadPath reports whether a torrent file path is a BEP 47 pad file path
// as publish writes it (".pad/<N>").
func IsPadPath(p string) bool {
	rest, ok := strings.CutPrefix(p, ".pad/")
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

// PadSizes lists the distinct sizes of the pad files in the torrent of a
// media release (none without a media section).
func (m *Manifest) PadSizes() []int64 {
	if m.Media == nil {
		return nil
	}
	offsets, _ := m.Layout()
	var end int64
	seen := map[int64]bool{}
	var out []int64
	for i, f := range m.Files {
		if gap := offsets[i] - end; gap > 0 && !seen[gap] {
			seen[gap] = true
			out = append(out, gap)
		}
		end = offsets[i] + f.Size
	}
	return out
}

// PadKey is the catalog key under which web seed clients ask for a pad
// file of n bytes of name@version (<version>/.pad/<n> under the web seed
// base).
func PadKey(name, version string, n int64) string {
	return DataPrefix(name, version) + ".pad/" + strconv.FormatInt(n, 10)
}

// ParsePadKey reports whether key is a pad key (PadKey) and its size.
func ParsePadKey(key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, "data/")
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[2] != ".pad" || !IsPadPath(".pad/"+parts[3]) {
		return 0, false
	}
	n, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != parts[3] {
		return 0, false
	}
	return n, true
}

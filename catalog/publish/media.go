package publish

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/media"
	"github.com/swarmship/swarmship/internal/piecehash"
)

// MaxPadShare is the most pad bytes, as a share of the payload, that the
// automatic media piece length accepts (MediaPieceLength).
const MaxPadShare = 0.01

// MediaResult is what publish --media reports.
type MediaResult struct {
	Format    string  `json:"format"`
	Playlists int     `json:"playlists"`
	Segments  int     `json:"segments"`
	PadFiles  int     `json:"pad_files"`
	PadBytes  int64   `json:"pad_bytes"`
	PadShare  float64 `json:"pad_share"` // pad bytes / payload bytes
	// Warning says why the pad share could not be kept under MaxPadShare.
	Warning string `json:"warning,omitempty"`
}

// mediaPlan is a media release's layout: the files with pads, which are
// segments, and the signed media section (first pieces filled in by
// finish).
type mediaPlan struct {
	stream  *media.Stream
	aligned []piecehash.FileEntry
	result  MediaResult
}

// MediaPieceLength chooses the piece length of a media release: the
// largest power of two from 16 KiB up to what ChoosePieceLength picks for
// the payload size whose pad bytes (computed exactly for this layout) stay
// under MaxPadShare of the payload. Each aligned segment wastes on average
// half a piece, so the share is roughly half the piece length over the
// mean segment size: segments must average well above 50 pieces. If even
// 16 KiB pieces cost more, 16 KiB is returned with ok false.
func MediaPieceLength(files []piecehash.FileEntry, isSegment func(int) bool) (pl, pad int64, ok bool) {
	var total int64
	for _, f := range files {
		total += f.Size
	}
	for pl = piecehash.ChoosePieceLength(total); pl >= piecehash.MinPieceLength; pl /= 2 {
		_, pad = piecehash.AlignFiles(files, pl, isSegment)
		if float64(pad) < MaxPadShare*float64(total) {
			return pl, pad, true
		}
	}
	pl = piecehash.MinPieceLength
	_, pad = piecehash.AlignFiles(files, pl, isSegment)
	return pl, pad, false
}

// planMedia parses the release's playlists and lays its segments out on
// piece boundaries. pieceLength 0 chooses one (MediaPieceLength).
func planMedia(files []piecehash.FileEntry, pieceLength int64) (*mediaPlan, int64, error) {
	byPath := make(map[string]string, len(files))
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = path.Join(f.Path...)
		byPath[names[i]] = f.Source
	}
	s, err := media.Parse(sourceFS(byPath), names)
	if err != nil {
		return nil, 0, err
	}
	segs := make(map[string]bool, len(s.Segments))
	for _, p := range s.Segments {
		segs[p] = true
	}
	isSeg := func(i int) bool { return segs[names[i]] }
	plan := &mediaPlan{stream: s}
	var payload int64
	for _, f := range files {
		payload += f.Size
	}
	for _, p := range s.Segments {
		if st, err := os.Stat(byPath[p]); err == nil && st.Size() == 0 {
			return nil, 0, fmt.Errorf("media: segment %s is empty", p)
		}
	}
	var pad int64
	if pieceLength == 0 {
		var ok bool
		pieceLength, pad, ok = MediaPieceLength(files, isSeg)
		if !ok {
			plan.result.Warning = fmt.Sprintf("segments are too small for pad files under %.0f%% of the release even with 16 KiB pieces (mean segment %d bytes): pads cost %.2f%%",
				MaxPadShare*100, meanSize(files, isSeg), 100*float64(pad)/float64(max(payload, 1)))
		}
	}
	plan.aligned, pad = piecehash.AlignFiles(files, pieceLength, isSeg)
	for _, f := range plan.aligned {
		if f.Pad {
			plan.result.PadFiles++
		}
	}
	plan.result.Format = s.Format
	plan.result.Playlists = len(s.Playlists)
	plan.result.Segments = len(s.Segments)
	plan.result.PadBytes = pad
	plan.result.PadShare = float64(pad) / float64(max(payload, 1))
	return plan, pieceLength, nil
}

func meanSize(files []piecehash.FileEntry, isSeg func(int) bool) int64 {
	var n, sum int64
	for i, f := range files {
		if isSeg(i) {
			n++
			sum += f.Size
		}
	}
	return sum / max(n, 1)
}

// section is the signed media section of m, whose Files are set: the
// segments in file order with their first piece and piece count.
func (p *mediaPlan) section(m *catalog.Manifest) *catalog.Media {
	md := &catalog.Media{Format: p.stream.Format, Playlists: slices.Clone(p.stream.Playlists)}
	segs := make(map[string]bool, len(p.stream.Segments))
	for _, s := range p.stream.Segments {
		segs[s] = true
	}
	for _, f := range m.Files {
		if segs[f.Path] {
			md.Segments = append(md.Segments, catalog.MediaSegment{Path: f.Path})
		}
	}
	m.Media = md
	offsets, _ := m.Layout()
	k := 0
	for i, f := range m.Files {
		if k < len(md.Segments) && md.Segments[k].Path == f.Path {
			md.Segments[k].FirstPiece = int(offsets[i] / m.PieceLength)
			md.Segments[k].Pieces = int((f.Size + m.PieceLength - 1) / m.PieceLength)
			k++
		}
	}
	return md
}

// sourceFS is the release as an fs.FS over its source files, for
// media.Parse: only the files of the release exist in it.
type sourceFS map[string]string

func (s sourceFS) Open(name string) (fs.File, error) {
	src, ok := s[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return os.Open(src)
}

// ensurePads uploads the pad files of a media release as objects of zeros
// to stores whose objects are the web seed themselves (S3 object URLs):
// clients that treat pads as files, the torrent library among them, ask
// the web seed for <version>/.pad/<N>, and a 404 makes them drop the web
// seed for that file. Directory catalogs need none: the origin answers
// pad paths with zeros itself. One object per distinct size; together
// they are at most the pad bytes (under 1% of the payload).
func ensurePads(ctx context.Context, store catalog.Store, m *catalog.Manifest) error {
	if _, ok := store.(catalog.URLer); !ok {
		return nil
	}
	if u := store.(catalog.URLer).ObjectURL(catalog.DataPrefix(m.Name, m.Version) + "x"); u == "" {
		return nil
	}
	for _, n := range m.PadSizes() {
		key := catalog.PadKey(m.Name, m.Version, n)
		if st, err := store.Stat(ctx, key); err == nil && st.Size == n {
			continue
		}
		if err := store.Put(ctx, key, bytes.NewReader(make([]byte, n)), n); err != nil {
			return fmt.Errorf("upload pad file %s: %w", key, err)
		}
	}
	return nil
}

// mediaNote is the one line the CLI prints about a media release.
func (r *MediaResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "media: %s, %d playlists, %d segments aligned to pieces, %d pad files (%d bytes, %.3f%% of the payload)",
		r.Format, r.Playlists, r.Segments, r.PadFiles, r.PadBytes, 100*r.PadShare)
	return b.String()
}

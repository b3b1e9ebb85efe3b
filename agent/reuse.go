package agent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/delta"
)

// Local reuse (issue 17). Before a new version joins the swarm, the agent
// fills its storage from releases it already holds (verified or active:
// the rollback copy and pinned releases too):
//
//   - a file whose signed SHA-256 equals that of a held file is cloned
//     (FICLONE where the filesystem shares extents, else a copy; never a
//     hard link, which a later change to either file would corrupt);
//   - a piece whose bytes lie in held files (those cloned files, and the
//     ranges the publisher's signed hints, Manifest.Delta, map onto the
//     base version) is assembled, checked against its SHA-1 and only then
//     written and recorded complete, so the library never asks for it.
//
// Held files are trusted for nothing: a base file changed since it was
// verified fails the piece hash here (and the file SHA-256 before
// activation), and the piece is fetched like any other. Pieces partly in
// held files are left to the origin offloader, which fetches only their
// missing ranges (subpiece.go).
//
// Crash safety: a piece is recorded complete only after its bytes are
// written and hashed, under the same durability rule as downloaded pieces
// (completion.go: survives kill -9; the file SHA-256 check and fsync before
// activation cover a power cut). Killed midway, the next start finds the
// recorded pieces complete and redoes the rest. Room: the release's whole
// size was reserved against the quota before (step), like any download;
// a full disk returns the write error, which pauses the release like a
// failed download write (failOrWait).

// localSeg is a run of a new release's bytes that a held file supplies.
type localSeg struct {
	off    int64  // offset in the new release's payload (torrent order)
	n      int64  // length
	src    string // the held file
	srcOff int64  // offset in src
	// inPlace: the bytes are already at their place in the new release's
	// files (a cloned file), so they are read back and not written.
	inPlace bool
}

// reuseResult is what reuse did for one release.
type reuseResult struct {
	reused  int64 // payload bytes of pieces completed from held files
	pieces  int   // pieces completed
	failed  int   // pieces assembled that failed their hash
	cloned  int   // files cloned whole
	partial map[int][]localSeg
}

// heldFile is a file of a held release with its signed size.
type heldFile struct {
	path string
	size int64
}

// newFile is one file of the new release laid out in torrent order.
type newFile struct {
	start, size int64
	dest        string
	src         *heldFile // a held file with the same SHA-256, or nil
	inPlace     bool      // cloned in this pass
}

// heldSources indexes the files of every held release by SHA-256, and the
// files of base (a version of the release name) by path. Only releases
// the agent verified count: their manifests are signed and their files
// were checked when they arrived.
func (a *Agent) heldSources(m *catalog.Manifest) (bySum map[string]*heldFile, base map[string]*heldFile) {
	bySum = map[string]*heldFile{}
	recs, err := a.state.All()
	if err != nil {
		return bySum, nil
	}
	wantBase := ""
	if m.Delta != nil {
		wantBase = m.Delta.Base
	}
	for _, r := range recs {
		if (r.Phase != PhaseActive && r.Phase != PhaseVerified) || (r.Name == m.Name && r.Version == m.Version) {
			continue
		}
		hm, err := a.cache.manifest(r.Name, r.Version)
		if err != nil || hm.Name != r.Name || hm.Version != r.Version {
			continue
		}
		dir := a.cache.releaseDir(r.Name, r.Version)
		isBase := r.Name == m.Name && r.Version == wantBase
		if isBase {
			base = map[string]*heldFile{}
		}
		notHeld := a.unfetchedVariants(hm)
		for i, f := range hm.Files {
			if notHeld != nil && notHeld[i] {
				continue // the other variant of a watermarked release (watermark.go)
			}
			hf := &heldFile{path: filepath.Join(dir, filepath.FromSlash(f.Path)), size: f.Size}
			if isBase {
				base[f.Path] = hf
			}
			if _, ok := bySum[f.SHA256]; !ok && f.Size > 0 {
				bySum[f.SHA256] = hf
			}
		}
	}
	return bySum, base
}

// reuseLocal fills the storage of m (torrent info, infohash ih) from held
// releases before the torrent is added. It returns the pieces only partly
// held for the sub-piece fetch.
func (a *Agent) reuseLocal(ctx context.Context, m *catalog.Manifest, info *metainfo.Info, ih metainfo.Hash) (reuseResult, error) {
	res := reuseResult{partial: map[int][]localSeg{}}
	if m.Media != nil {
		// Pads shift a media release's pieces off the manifest's
		// back-to-back offsets: no local reuse for it (yet).
		return res, nil
	}
	bySum, base := a.heldSources(m)
	var hints *delta.Hints
	if m.Delta != nil && base != nil {
		hints = m.Delta
	}
	if len(bySum) == 0 && hints == nil {
		return res, nil
	}
	dir := a.cache.releaseDir(m.Name, m.Version)
	files := make([]newFile, 0, len(m.Files))
	var off int64
	for _, f := range m.Files {
		nf := newFile{start: off, size: f.Size, dest: filepath.Join(dir, filepath.FromSlash(f.Path))}
		if hf := bySum[f.SHA256]; hf != nil && hf.size == f.Size {
			nf.src = hf
		}
		files = append(files, nf)
		off += f.Size
	}
	pl := m.PieceLength
	np := info.NumPieces()
	done := make([]bool, np)
	for i := range np {
		c, err := a.complete.Get(metainfo.PieceKey{InfoHash: ih, Index: i})
		if err != nil {
			return res, fmt.Errorf("piece completion: %w", err)
		}
		done[i] = c.Ok && c.Complete
	}
	// Clone whole files first: on a filesystem that shares extents they
	// then cost no room, and their pieces are only read back and hashed.
	for i := range files {
		f := &files[i]
		if f.src == nil || f.size == 0 || anyDone(done, f.start, f.size, pl) {
			continue
		}
		if _, err := os.Lstat(f.dest); !errors.Is(err, fs.ErrNotExist) {
			continue // an earlier pass wrote here: assemble piece by piece
		}
		if err := cloneFile(f.src.path, f.dest); err != nil {
			if isNoSpace(err) {
				return res, err
			}
			a.log.Warn("cannot copy a held file; assembling its pieces instead", "release", m.Name, "version", m.Version, "file", f.dest, "from", f.src.path, "err", err)
			os.Remove(f.dest)
			continue
		}
		f.inPlace = true
		res.cloned++
	}
	w := &segWriter{files: files}
	defer w.close()
	buf := make([]byte, pl)
	for p := range np {
		if done[p] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		begin := int64(p) * pl
		end := min(begin+pl, m.TotalSize)
		segs, held := planPiece(files, hints, base, begin, end)
		if held == 0 {
			continue
		}
		if held < end-begin {
			res.partial[p] = segs
			continue
		}
		b := buf[:end-begin]
		if err := readSegs(segs, b, begin, w); err != nil {
			res.failed++
			continue
		}
		sum := sha1.Sum(b)
		want := info.Piece(p).V1Hash()
		if !want.Ok || !bytes.Equal(sum[:], want.Value[:]) {
			res.failed++
			continue
		}
		if err := w.writeSegs(segs, b, begin); err != nil {
			return res, err
		}
		if err := a.complete.Set(metainfo.PieceKey{InfoHash: ih, Index: p}, true); err != nil {
			return res, fmt.Errorf("piece completion: %w", err)
		}
		res.reused += end - begin
		res.pieces++
	}
	return res, nil
}

// anyDone reports whether a piece overlapping [off, off+n) is complete.
func anyDone(done []bool, off, n, pl int64) bool {
	for p := off / pl; p*pl < off+n && int(p) < len(done); p++ {
		if done[p] {
			return true
		}
	}
	return false
}

// planPiece lists the held runs of the piece [begin, end) in order and how
// many of its bytes they cover. A file with a held copy wins over hints
// for its bytes; hints count only where their base file is held and large
// enough.
func planPiece(files []newFile, hints *delta.Hints, base map[string]*heldFile, begin, end int64) ([]localSeg, int64) {
	var segs []localSeg
	var held int64
	i := sort.Search(len(files), func(i int) bool { return files[i].start+files[i].size > begin })
	for ; i < len(files) && files[i].start < end; i++ {
		f := files[i]
		lo, hi := max(begin, f.start), min(end, f.start+f.size)
		if lo >= hi {
			continue
		}
		if f.src != nil {
			segs = append(segs, localSeg{off: lo, n: hi - lo, src: f.src.path, srcOff: lo - f.start, inPlace: f.inPlace})
			held += hi - lo
			continue
		}
		if hints == nil {
			continue
		}
		for _, r := range hints.Overlapping(lo, hi-lo) {
			s, e := max(lo, r.Off), min(hi, r.Off+r.Len)
			bf := base[r.BasePath]
			srcOff := r.BaseOff + (s - r.Off)
			if bf == nil || srcOff+(e-s) > bf.size {
				continue
			}
			segs = append(segs, localSeg{off: s, n: e - s, src: bf.path, srcOff: srcOff})
			held += e - s
		}
	}
	return segs, held
}

// readSegs reads the held runs of a piece starting at begin into b.
func readSegs(segs []localSeg, b []byte, begin int64, w *segWriter) error {
	for _, s := range segs {
		dst := b[s.off-begin : s.off-begin+s.n]
		if s.inPlace {
			if err := w.readAt(dst, s.off); err != nil {
				return err
			}
			continue
		}
		if err := w.readSrc(s.src, dst, s.srcOff); err != nil {
			return err
		}
	}
	return nil
}

// segWriter reads held files and reads and writes the new release's
// files, keeping the descriptors of one reuse pass open.
type segWriter struct {
	files []newFile
	open  map[string]*os.File
}

func (w *segWriter) file(path string, write bool) (*os.File, error) {
	key := path
	if write {
		key = "w:" + path
	}
	if f := w.open[key]; f != nil {
		return f, nil
	}
	if len(w.open) >= maxReuseOpen {
		w.close()
	}
	var f *os.File
	var err error
	if write {
		if err = os.MkdirAll(filepath.Dir(path), 0o750); err == nil {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
		}
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	if w.open == nil {
		w.open = map[string]*os.File{}
	}
	w.open[key] = f
	return f, nil
}

// maxReuseOpen bounds the descriptors of one reuse pass.
const maxReuseOpen = 64

func (w *segWriter) close() {
	for k, f := range w.open {
		f.Close()
		delete(w.open, k)
	}
}

func (w *segWriter) readSrc(path string, b []byte, off int64) error {
	f, err := w.file(path, false)
	if err != nil {
		return err
	}
	_, err = f.ReadAt(b, off)
	return err
}

// readAt reads the new release's bytes at torrent offset off.
func (w *segWriter) readAt(b []byte, off int64) error {
	return w.spans(b, off, func(f *os.File, p []byte, fileOff int64) error {
		_, err := f.ReadAt(p, fileOff)
		return err
	}, false)
}

// writeSegs writes the runs of b (the piece at begin) that are not in
// place yet.
func (w *segWriter) writeSegs(segs []localSeg, b []byte, begin int64) error {
	for _, s := range segs {
		if s.inPlace {
			continue
		}
		err := w.spans(b[s.off-begin:s.off-begin+s.n], s.off, func(f *os.File, p []byte, fileOff int64) error {
			_, err := f.WriteAt(p, fileOff)
			return err
		}, true)
		if err != nil {
			return err
		}
	}
	return nil
}

// spans calls fn for each part of [off, off+len(b)) in one of the new
// release's files.
func (w *segWriter) spans(b []byte, off int64, fn func(f *os.File, p []byte, fileOff int64) error, write bool) error {
	end := off + int64(len(b))
	i := sort.Search(len(w.files), func(i int) bool { return w.files[i].start+w.files[i].size > off })
	for ; i < len(w.files) && w.files[i].start < end; i++ {
		nf := w.files[i]
		lo, hi := max(off, nf.start), min(end, nf.start+nf.size)
		if lo >= hi {
			continue
		}
		f, err := w.file(nf.dest, write)
		if err != nil {
			return err
		}
		if err := fn(f, b[lo-off:hi-off], lo-nf.start); err != nil {
			return fmt.Errorf("%s: %w", nf.dest, err)
		}
	}
	return nil
}

// cloneFile makes dst a copy of src: a clone sharing src's extents where
// the filesystem can (FICLONE), else a copy of its bytes. Never a link.
func cloneFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if reflink(out, in) != nil {
		// io.Copy between files uses copy_file_range on Linux, which also
		// shares extents where it can.
		if _, err = out.ReadFrom(in); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

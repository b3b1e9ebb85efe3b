package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/delta"
	"github.com/swarmship/swarmship/internal/piecehash"
)

// BaseNone turns delta hints off (PublishOptions.Base).
const BaseNone = "none"

// maxHintBytes bounds the hints' share of the manifest (MaxManifestSize is
// 16 MiB, and the file list needs room too): past it only the largest
// ranges are kept, which loses the fewest bytes for the room.
const maxHintBytes = 8 << 20

// DeltaResult says what the publisher's delta hints against the base cover.
type DeltaResult struct {
	Base          string `json:"base,omitempty"`
	Note          string `json:"note,omitempty"` // why there is no base, when there is none
	HintedBytes   int64  `json:"hinted_bytes"`   // bytes of the release found in the base
	NewBytes      int64  `json:"new_bytes"`      // the rest: what an agent holding the base must fetch
	Ranges        int    `json:"ranges"`
	BlockSize     int    `json:"block_size,omitempty"`
	BaseSize      int64  `json:"base_size,omitempty"`
	BaseBytesRead int64  `json:"base_bytes_read,omitempty"` // index pass plus the byte-exact edges
	// NewBytesReread counts bytes of the new files read a second time, for
	// the edges only: matching itself rides on the hashing pass.
	NewBytesReread int64 `json:"new_bytes_reread,omitempty"`
}

// hinter computes a release's delta hints during its hashing pass: the base
// is read once into a block index before hashing, each new file is matched
// from the bytes the SHA-256 pass already reads (piecehash Observe), and
// only the edges of matches are read again, a block at most each.
type hinter struct {
	base     string
	baseM    *catalog.Manifest
	src      baseSource
	ix       *delta.Index
	scanners []*delta.Scanner // per new file, in torrent order
	read     atomic.Int64     // bytes read from the base
}

// baseSource reads the base release's files: from the catalog or from a
// local directory (--base-dir) holding the same files.
type baseSource interface {
	open(ctx context.Context, path string) (io.ReadCloser, error)
	readerAt(ctx context.Context, path string) (io.ReaderAt, error)
}

// prepareHints picks the base (opts.Base; by default what the first of
// opts.Channels that points anywhere points at) and indexes it. It returns
// a nil hinter, and a note saying why, when there is no base.
func prepareHints(ctx context.Context, store catalog.Store, repo *catalog.Repo, opts PublishOptions, files []piecehash.FileEntry, pieceLength int64) (*hinter, *DeltaResult, error) {
	if _, signed := repo.ManifestTarget(opts.Name, opts.Version); signed && opts.Base != BaseNone {
		// A re-run (say after a killed publish): the signed manifest, hints
		// and all, is what stands, so reading the base again buys nothing.
		return nil, &DeltaResult{Note: "already signed: the published hints stand"}, nil
	}
	base := opts.Base
	switch base {
	case BaseNone:
		if opts.BaseDir != "" {
			return nil, nil, errors.New("--base-dir with --base none: give one or the other")
		}
		return nil, nil, nil
	case "":
		rels, err := repo.Releases()
		if err != nil {
			return nil, nil, err
		}
		for _, ch := range opts.Channels {
			if r, err := catalog.ResolveRelease(rels, opts.Name, ch, ""); err == nil && r.Version != opts.Version {
				base = r.Version
				break
			}
		}
		if base == "" && opts.BaseDir != "" {
			return nil, nil, fmt.Errorf("--base-dir %s: no base version to check it against (name one with --base)", opts.BaseDir)
		}
		if base == "" {
			note := "no base: no channel given (use --base VERSION)"
			if len(opts.Channels) > 0 {
				note = fmt.Sprintf("no base: first release in channel %s (no other version of %s there)", strings.Join(opts.Channels, ","), opts.Name)
			}
			return nil, &DeltaResult{Note: note}, nil
		}
	default:
		if base == opts.Version {
			return nil, nil, fmt.Errorf("--base %s: a release cannot be its own base", base)
		}
		if _, ok := repo.ManifestTarget(opts.Name, base); !ok {
			return nil, nil, fmt.Errorf("--base %s: %s@%s is not in the catalog (--base none publishes without hints)", base, opts.Name, base)
		}
	}
	h, err := loadBase(ctx, store, repo, opts, base, pieceLength)
	if err != nil {
		// The default base is a convenience: a base that cannot be read
		// (a lost payload object, a store hiccup) must not stop a release.
		// One asked for by name must.
		if opts.Base == "" && opts.BaseDir == "" && ctx.Err() == nil {
			return nil, &DeltaResult{Note: fmt.Sprintf("no base: reading %s@%s failed, published without delta hints: %v", opts.Name, base, err)}, nil
		}
		return nil, nil, fmt.Errorf("base %s@%s (--base none publishes without delta hints): %w", opts.Name, base, err)
	}
	// Torrent order is the order of files here, which is the manifest's
	// order too (Publish lists m.Files from the same slice, and
	// piecehash.BuildInfo writes the torrent's file list from it).
	var off int64
	for _, f := range files {
		h.scanners = append(h.scanners, h.ix.Scan(off, f.Size))
		off += f.Size
	}
	return h, nil, nil
}

// loadBase reads the base's signed manifest and indexes its files.
func loadBase(ctx context.Context, store catalog.Store, repo *catalog.Repo, opts PublishOptions, base string, pieceLength int64) (*hinter, error) {
	b, err := signedObject(ctx, store, repo, catalog.ManifestKey(opts.Name, base), catalog.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	bm, err := catalog.ParseManifest(b)
	if err != nil {
		return nil, err
	}
	h := &hinter{base: base, baseM: bm}
	if opts.BaseDir != "" {
		h.src = dirBase{dir: opts.BaseDir, n: &h.read}
	} else {
		h.src = storeBase{store: store, prefix: catalog.DataPrefix(opts.Name, base), n: &h.read}
	}
	h.ix = delta.NewIndex(delta.BlockSize(pieceLength, bm.TotalSize))
	if err := h.indexBase(ctx, opts.Workers); err != nil {
		return nil, err
	}
	return h, nil
}

// indexBase reads every base file once, on workers goroutines (one per
// CPU by default: with SHA-256 besides the block sums, one core indexes at
// about a third of the speed the hashing pass reads), and adds them to the
// index in manifest order.
func (h *hinter) indexBase(ctx context.Context, workers int) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	files := h.baseM.Files
	hashed := make([]*delta.FileBlocks, len(files))
	errs := make([]error, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(workers, len(files)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) || ctx.Err() != nil {
					return
				}
				if hashed[i], errs[i] = h.hashBaseFile(ctx, files[i]); errs[i] != nil {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, fb := range hashed {
		if err := h.ix.Add(fb); err != nil {
			return err
		}
	}
	return nil
}

// hashBaseFile reads one base file once, computing its block sums and
// checking it against the signed SHA-256: hints must point at the base
// agents hold.
func (h *hinter) hashBaseFile(ctx context.Context, f catalog.ManifestFile) (*delta.FileBlocks, error) {
	rc, err := h.src.open(ctx, f.Path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sum := sha256.New()
	fb, n, err := h.ix.HashFile(f.Path, io.TeeReader(rc, sum))
	if err != nil {
		return nil, err
	}
	if n != f.Size || hex.EncodeToString(sum.Sum(nil)) != f.SHA256 {
		return nil, fmt.Errorf("file %s differs from the signed base (%d bytes read, %d signed)", f.Path, n, f.Size)
	}
	return fb, nil
}

// observe hands the hasher each new file's scanner (nil hinter: none).
func (h *hinter) observe() func(int) io.Writer {
	if h == nil {
		return nil
	}
	return func(i int) io.Writer { return h.scanners[i] }
}

// finish turns the scans into the signed hints: files whose SHA-256 is a
// base file's (renamed, moved, unchanged, or too small for a block) become
// one whole-file range, the rest keep their block matches, which are then
// extended byte-exactly at their edges and merged.
func (h *hinter) finish(ctx context.Context, files []piecehash.FileEntry, hr *piecehash.Result) (*delta.Hints, *DeltaResult, error) {
	if h == nil {
		return nil, nil, nil
	}
	byHash := map[[32]byte]string{}
	for _, f := range slices.Backward(h.baseM.Files) { // the first of equal files wins
		var s [32]byte
		if b, err := hex.DecodeString(f.SHA256); err == nil && len(b) == 32 && f.Size > 0 {
			copy(s[:], b)
			byHash[s] = f.Path
		}
	}
	samePath := map[string]string{}
	for _, f := range h.baseM.Files {
		samePath[f.Path] = f.SHA256
	}
	var rs []delta.Range
	var off, total int64
	for i, f := range files {
		p := filepath.ToSlash(filepath.Join(f.Path...))
		if bp, ok := byHash[hr.SHA256[i]]; ok && f.Size > 0 {
			if samePath[p] == hex.EncodeToString(hr.SHA256[i][:]) {
				bp = p // unchanged: point at itself rather than at a twin
			}
			rs = append(rs, delta.Range{Off: off, Len: f.Size, BasePath: bp})
		} else {
			rs = append(rs, h.scanners[i].Ranges()...)
		}
		off += f.Size
	}
	total = off
	newData := &payloadReader{files: files}
	defer newData.close()
	rs, err := delta.Extend(delta.Merge(rs), total, newData, func(p string) (io.ReaderAt, error) {
		return h.src.readerAt(ctx, p)
	}, h.ix.BlockSize())
	if err != nil {
		return nil, nil, fmt.Errorf("delta hints: %w", err)
	}
	rs = boundHints(rs)
	res := &DeltaResult{Base: h.base, Ranges: len(rs), BlockSize: h.ix.BlockSize(), BaseSize: h.baseM.TotalSize,
		BaseBytesRead: h.read.Load(), NewBytesReread: newData.n}
	for _, r := range rs {
		res.HintedBytes += r.Len
	}
	res.NewBytes = total - res.HintedBytes
	if len(rs) == 0 {
		return nil, res, nil
	}
	return &delta.Hints{Base: h.base, Ranges: rs}, res, nil
}

// boundHints keeps the largest ranges whose JSON fits maxHintBytes.
func boundHints(rs []delta.Range) []delta.Range {
	// One range in the indented manifest: at most rangeJSON bytes of
	// keys, numbers and indentation, plus its path as a JSON string (up
	// to 6 bytes a byte: encoding/json writes & < > as \u0026...).
	const rangeJSON = 160
	total := 0
	for _, r := range rs {
		total += rangeJSON + 6*len(r.BasePath)
	}
	if total <= maxHintBytes && len(rs) <= delta.MaxRanges {
		return rs
	}
	cost := func(r delta.Range) int {
		b, _ := json.Marshal(r.BasePath)
		return rangeJSON + len(b)
	}
	bySize := slices.Clone(rs)
	slices.SortStableFunc(bySize, func(a, b delta.Range) int {
		switch {
		case a.Len > b.Len:
			return -1
		case a.Len < b.Len:
			return 1
		}
		return 0
	})
	kept := bySize[:0]
	used := 0
	for _, r := range bySize {
		if used+cost(r) > maxHintBytes || len(kept) == delta.MaxRanges {
			break
		}
		used += cost(r)
		kept = append(kept, r)
	}
	return delta.Merge(kept)
}

// payloadReader reads the local release files as one torrent-ordered
// payload, opening each on first use. Reads are serialized: they are
// local and small, the base's (possibly remote) reads are the slow ones.
type payloadReader struct {
	mu    sync.Mutex
	files []piecehash.FileEntry
	open  map[int]*os.File
	n     int64 // bytes read
}

func (p *payloadReader) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var start int64
	for i, f := range p.files {
		end := start + f.Size
		if off+int64(n) < end && len(b) > n {
			if p.open == nil {
				p.open = map[int]*os.File{}
			}
			fh := p.open[i]
			if fh == nil {
				var err error
				if fh, err = os.Open(f.Source); err != nil {
					return n, err
				}
				p.open[i] = fh
			}
			want := min(int64(len(b)-n), end-(off+int64(n)))
			k, err := fh.ReadAt(b[n:n+int(want)], off+int64(n)-start)
			n += k
			p.n += int64(k)
			if err != nil && !(errors.Is(err, io.EOF) && int64(k) == want) {
				return n, fmt.Errorf("read %s: %w", f.Source, err)
			}
		}
		start = end
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p *payloadReader) close() {
	for _, f := range p.open {
		f.Close()
	}
}

// storeBase reads the base from the catalog's payload of that version.
type storeBase struct {
	store  catalog.Store
	prefix string
	n      *atomic.Int64
}

func (s storeBase) open(ctx context.Context, path string) (io.ReadCloser, error) {
	rc, err := s.store.Get(ctx, s.prefix+path)
	if err != nil {
		return nil, err
	}
	return countedReadCloser{rc, s.n}, nil
}

func (s storeBase) readerAt(ctx context.Context, path string) (io.ReaderAt, error) {
	return rangeReaderAt{ctx: ctx, s: s, key: s.prefix + path}, nil
}

// rangeReaderAt reads a stored object with one GetRange per ReadAt: the
// edges Extend reads are few and a block long.
type rangeReaderAt struct {
	ctx context.Context
	s   storeBase
	key string
}

func (r rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := r.s.store.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		// An offset at or past the end is an error for GetRange; for a
		// ReaderAt it is the end of the data.
		if st, serr := r.s.store.Stat(r.ctx, r.key); serr == nil && off >= st.Size {
			return 0, io.EOF
		}
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	r.s.n.Add(int64(n))
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return n, io.EOF
	}
	return n, err
}

// dirBase reads the base from a local directory (--base-dir).
type dirBase struct {
	dir string
	n   *atomic.Int64
}

func (d dirBase) file(path string) string { return filepath.Join(d.dir, filepath.FromSlash(path)) }

func (d dirBase) open(_ context.Context, path string) (io.ReadCloser, error) {
	f, err := os.Open(d.file(path))
	if err != nil {
		return nil, fmt.Errorf("--base-dir: %w", err)
	}
	return countedReadCloser{f, d.n}, nil
}

func (d dirBase) readerAt(_ context.Context, path string) (io.ReaderAt, error) {
	return dirReaderAt{d, d.file(path)}, nil
}

// dirReaderAt opens the file for each ReadAt: Extend makes a few per
// changed region, and nothing stays open after publish.
type dirReaderAt struct {
	d    dirBase
	name string
}

func (r dirReaderAt) ReadAt(p []byte, off int64) (int, error) {
	f, err := os.Open(r.name)
	if err != nil {
		return 0, fmt.Errorf("--base-dir: %w", err)
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	r.d.n.Add(int64(n))
	return n, err
}

type countedReadCloser struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countedReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

package btclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// NewFileStorage returns a file storage for anacrolix/torrent that reads
// and writes with pread/pwrite instead of the library's mmap file storage.
// Files are laid out as the library lays them out by default:
// dir/<info name>/<path...> (dir/<info name> for a single-file torrent),
// so existing caches and in-place seeding keep working. Piece completion
// is kept in completion, which Close closes.
//
// Why not the library's storage (anacrolix/torrent v1.59.1): its mmap
// path cost a leecher a page fault per written page and a synchronous
// msync per piece (about 40% of its CPU on loopback), kept every file it
// touched mapped (idle RSS grows with what was served), cannot map empty
// files, and can SIGBUS the process when a file shrinks underneath it.
//
// Durability: a piece marked complete is not synced to disk. A crash can
// therefore lose bytes of pieces the completion store already records as
// complete. Whoever relies on the files (the agent, before it records a
// release as verified) must check them end to end and fsync them; the
// agent checks every file's SHA-256 and fsyncs it (agent/activate.go).
func NewFileStorage(dir string, completion storage.PieceCompletion, opts ...FileStorageOption) storage.ClientImplCloser {
	if completion == nil {
		completion = storage.NewMapPieceCompletion()
	}
	c := &fileClient{dir: dir, completion: completion, hashBuf: defaultHashBuffer}
	for _, o := range opts {
		o(c)
	}
	return c
}

// FileStorageOption configures NewFileStorage.
type FileStorageOption func(*fileClient)

// WithServeBudget charges every block read for a peer to b (see
// ServeBudget). Give all the storages of one client the same budget.
func WithServeBudget(b *ServeBudget) FileStorageOption {
	return func(c *fileClient) { c.serve = b }
}

// maxOpenFiles bounds the descriptors one torrent keeps open; the least
// recently used idle one is closed to make room. A torrent with thousands
// of small files then costs at most this many descriptors.
const maxOpenFiles = 64

// File and directory modes for what the storage creates, as for the rest
// of the agent's cache.
const (
	fileMode os.FileMode = 0o640
	dirMode  os.FileMode = 0o750
)

var errStorageClosed = errors.New("torrent storage is closed")

type fileClient struct {
	dir        string
	completion storage.PieceCompletion
	serve      *ServeBudget // nil: reads for peers are not budgeted
	hashBuf    *HashBuffer  // out-of-order blocks of self-hashing pieces
	readBack   bool         // no self-hashing (WithReadBackHashing)
	hashStats  hashStats
}

func (c *fileClient) Close() error { return c.completion.Close() }

func (c *fileClient) OpenTorrent(_ context.Context, info *metainfo.Info, infoHash metainfo.Hash) (storage.TorrentImpl, error) {
	if info == nil {
		return storage.TorrentImpl{}, errors.New("file storage: torrent has no info")
	}
	if info.HasV2() {
		// v2 files are piece-aligned with gaps between them; swarmship
		// only uses plain v1 torrents (see catalog/torrentfile).
		return storage.TorrentImpl{}, errors.New("file storage: v2 torrents are not supported")
	}
	t := &fileTorrent{completion: c.completion, infoHash: infoHash, serve: c.serve}
	if !c.readBack {
		t.hashes = newPieceHashes(c.hashBuf, &c.hashStats)
	}
	seen := make(map[string]bool)
	for _, fi := range info.UpvertedFiles() {
		if strings.Contains(fi.Attr, "p") && fi.Length > 0 {
			// A BEP 47 pad file: zeros that are part of the pieces but
			// not payload. Reads give zeros and writes are dropped (the
			// piece hash still covers them), so no ".pad" file ever lands
			// in the cache, the agent's SHA-256 checks, GC and quotas
			// never see one, and pads of one size may share a path.
			t.files = append(t.files, &torrentFile{off: fi.TorrentOffset, length: fi.Length, pad: true})
			continue
		}
		rel, err := localPath(info, fi)
		if err != nil {
			return storage.TorrentImpl{}, err
		}
		if seen[rel] {
			return storage.TorrentImpl{}, fmt.Errorf("file storage: torrent lists %q twice", rel)
		}
		seen[rel] = true
		f := &torrentFile{path: filepath.Join(c.dir, rel), off: fi.TorrentOffset, length: fi.Length}
		if f.length == 0 {
			// No piece covers an empty file, so no write would ever
			// create it.
			if err := createEmpty(f.path); err != nil {
				return storage.TorrentImpl{}, fmt.Errorf("file storage: %w", err)
			}
			continue
		}
		t.files = append(t.files, f)
	}
	return storage.TorrentImpl{Piece: t.piece, Close: t.close}, nil
}

// localPath is a file's path relative to the storage directory. Every
// component must be a plain name and the result must stay inside the
// directory: torrents come from the network.
func localPath(info *metainfo.Info, fi metainfo.FileInfo) (string, error) {
	var parts []string
	if name := info.BestName(); name != metainfo.NoName {
		parts = append(parts, name)
	}
	parts = append(parts, fi.BestPath()...)
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\\\x00") {
			return "", fmt.Errorf("file storage: unsafe path component %q in %q", p, strings.Join(parts, "/"))
		}
	}
	rel := filepath.Join(parts...)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file storage: path %q is not inside the storage directory", rel)
	}
	return rel, nil
}

// createEmpty makes sure an empty file exists at path. An existing empty
// file is left alone (it may sit in a read-only catalog); anything else
// at that path is truncated.
func createEmpty(path string) error {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	return f.Close()
}

// fileTorrent is the storage of one torrent: its non-empty files in
// torrent order, and the descriptors open on them.
type fileTorrent struct {
	completion storage.PieceCompletion
	infoHash   metainfo.Hash
	files      []*torrentFile // non-empty files, ascending offsets
	serve      *ServeBudget   // nil: not budgeted
	hashes     *pieceHashes   // nil: pieces are hashed by reading them back

	mu     sync.Mutex
	open   []*torrentFile // files with a handle, at most maxOpenFiles unless all are busy
	clock  uint64
	closed bool
}

type torrentFile struct {
	path        string
	off, length int64 // the file's extent in the torrent
	h           *handle
	pad         bool // a pad file: no path, reads zeros, writes dropped
}

// handle is an open descriptor; refs counts I/O in flight on it so that
// eviction never closes a descriptor under a read or write.
type handle struct {
	f        *os.File
	writable bool
	refs     int
	used     uint64
	detached bool // no longer its file's handle: close when refs reaches 0
}

// acquire returns an open handle on f, opening it if needed: read-only for
// reads (a missing file is fs.ErrNotExist), read-write and created, with
// its directories, for writes.
func (t *fileTorrent) acquire(f *torrentFile, write bool) (*handle, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errStorageClosed
	}
	t.clock++
	if h := f.h; h != nil {
		if !write || h.writable {
			h.refs++
			h.used = t.clock
			return h, nil
		}
		t.detach(f) // read-only so far: reopen for writing
	}
	var (
		osf *os.File
		err error
	)
	if write {
		osf, err = os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, fileMode)
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(f.path), dirMode); err == nil {
				osf, err = os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, fileMode)
			}
		}
	} else {
		osf, err = os.Open(f.path)
	}
	if err != nil {
		return nil, err
	}
	if len(t.open) >= maxOpenFiles {
		t.evictOne()
	}
	f.h = &handle{f: osf, writable: write, refs: 1, used: t.clock}
	t.open = append(t.open, f)
	return f.h, nil
}

func (t *fileTorrent) release(h *handle) {
	t.mu.Lock()
	h.refs--
	if h.detached && h.refs == 0 {
		h.f.Close()
	}
	t.mu.Unlock()
}

// evictOne closes the least recently used idle handle, if there is one.
// t.mu is held.
func (t *fileTorrent) evictOne() {
	var lru *torrentFile
	for _, f := range t.open {
		if f.h.refs == 0 && (lru == nil || f.h.used < lru.h.used) {
			lru = f
		}
	}
	if lru != nil {
		t.detach(lru)
	}
}

// detach takes f's handle away from f and closes it once idle. t.mu is
// held.
func (t *fileTorrent) detach(f *torrentFile) {
	h := f.h
	f.h = nil
	for i, o := range t.open {
		if o == f {
			t.open[i] = t.open[len(t.open)-1]
			t.open[len(t.open)-1] = nil
			t.open = t.open[:len(t.open)-1]
			break
		}
	}
	h.detached = true
	if h.refs == 0 {
		h.f.Close()
	}
}

func (t *fileTorrent) close() error {
	if t.hashes != nil {
		t.hashes.close()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for len(t.open) > 0 {
		t.detach(t.open[len(t.open)-1])
	}
	return nil
}

// spans calls fn for each piece of the torrent extent [off, off+n) that
// lies in a file, in order, with the offset within the file and the
// offset within the extent, until fn returns false. It returns how many
// bytes of the extent it covered.
func (t *fileTorrent) spans(off, n int64, fn func(f *torrentFile, fileOff, pos, length int64) bool) int64 {
	i := sort.Search(len(t.files), func(i int) bool { return t.files[i].off+t.files[i].length > off })
	var pos int64
	for ; i < len(t.files) && pos < n; i++ {
		f := t.files[i]
		fileOff := off + pos - f.off
		if fileOff < 0 {
			break // a gap; v1 torrents have none
		}
		length := min(f.length-fileOff, n-pos)
		if !fn(f, fileOff, pos, length) {
			return pos
		}
		pos += length
	}
	return pos
}

// readAt reads the torrent's bytes at off. Data that is not on disk (a
// missing or short file) ends the read with io.EOF, as the library's own
// file storage does; it is never made up.
func (t *fileTorrent) readAt(b []byte, off int64) (n int, err error) {
	covered := t.spans(off, int64(len(b)), func(f *torrentFile, fileOff, pos, length int64) bool {
		var k int
		k, err = t.readFile(f, b[pos:pos+length], fileOff)
		n += k
		return err == nil
	})
	if err == nil && covered < int64(len(b)) {
		err = io.EOF // past the end of the torrent
	}
	return n, err
}

func (t *fileTorrent) readFile(f *torrentFile, b []byte, off int64) (int, error) {
	if f.pad {
		clear(b)
		return len(b), nil
	}
	h, err := t.acquire(f, false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, io.EOF
	}
	if err != nil {
		return 0, err
	}
	defer t.release(h)
	n, err := h.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("read %s: %w", f.path, err)
	}
	return n, err
}

func (t *fileTorrent) writeAt(b []byte, off int64) (n int, err error) {
	covered := t.spans(off, int64(len(b)), func(f *torrentFile, fileOff, pos, length int64) bool {
		if f.pad {
			n += int(length)
			return true
		}
		var h *handle
		if h, err = t.acquire(f, true); err != nil {
			err = fmt.Errorf("open %s for writing: %w", f.path, err)
			return false
		}
		var k int
		k, err = h.f.WriteAt(b[pos:pos+length], fileOff)
		t.release(h)
		n += k
		if err != nil {
			err = fmt.Errorf("write %s: %w", f.path, err)
		}
		return err == nil
	})
	if err == nil && covered < int64(len(b)) {
		err = errors.New("write past the end of the torrent")
	}
	return n, err
}

func (t *fileTorrent) piece(p metainfo.Piece) storage.PieceImpl {
	fp := &filePiece{t: t, index: p.Index(), off: p.Offset(), length: p.Length()}
	if t.hashes == nil || t.hashes.readingBack(fp.index) {
		return fp
	}
	want := p.V1Hash()
	return &selfHashPiece{filePiece: fp, want: want.Value, haveWant: want.Ok}
}

// filePiece is one piece of a fileTorrent. It implements io.WriterTo for
// hashing, and deliberately not storage.Flusher: the library would call
// it after every piece, and a per-piece sync is what made the library's
// storage slow.
type filePiece struct {
	t           *fileTorrent
	index       int
	off, length int64
}

var (
	_ storage.PieceImpl = (*filePiece)(nil)
	_ io.WriterTo       = (*filePiece)(nil)
)

func (p *filePiece) key() metainfo.PieceKey {
	return metainfo.PieceKey{InfoHash: p.t.infoHash, Index: p.index}
}

// ReadAt serves peer requests (the library hashes with WriteTo); with a
// serve budget, b is charged to it first.
//
// Once the torrent's storage is closed, ReadAt fails. It must not return
// zeros instead: anacrolix/torrent v1.59.1 closes a torrent's storage
// before its connections, so a zero block read then can still be sent,
// and the peer's smart ban bans this address for a bad block (on one
// host, every agent of a test). The library panics on such a failed read
// only for a torrent being dropped with a peer read in flight.
func (p *filePiece) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if p.t.serve != nil {
		p.t.serve.track(b)
	}
	if off >= p.length {
		return 0, io.EOF
	}
	short := int64(len(b)) > p.length-off
	if short {
		b = b[:p.length-off]
	}
	n, err := p.t.readAt(b, p.off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (p *filePiece) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.length {
		return 0, fmt.Errorf("write of %d bytes at %d overflows piece %d of %d bytes", len(b), off, p.index, p.length)
	}
	n, err := p.t.writeAt(b, p.off+off)
	if p.t.hashes != nil {
		p.t.hashes.wrote(p.index, off, b[:n], err == nil && n == len(b))
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// WriteTo writes the piece's bytes to w (the library hashes pieces this
// way). A piece whose data is not all on disk ends with io.EOF.
func (p *filePiece) WriteTo(w io.Writer) (written int64, err error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for written < p.length {
		chunk := buf[:min(int64(len(buf)), p.length-written)]
		n, rerr := p.t.readAt(chunk, p.off+written)
		if n > 0 {
			m, werr := w.Write(chunk[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if rerr != nil {
			return written, rerr
		}
	}
	return written, nil
}

func (p *filePiece) MarkComplete() error {
	if p.t.hashes != nil {
		p.t.hashes.forget(p.index, false)
	}
	return p.t.completion.Set(p.key(), true)
}

func (p *filePiece) MarkNotComplete() error {
	if p.t.hashes != nil {
		p.t.hashes.dropRunning(p.index)
	}
	return p.t.completion.Set(p.key(), false)
}

// Completion is the recorded completion, checked against the files: a
// piece whose bytes are not all on disk (a file missing or too short) is
// incomplete. A piece recorded complete is then recorded incomplete. A
// piece with no record is reported incomplete at once instead of unknown,
// so the library does not hash it first: a fresh download starts without
// an initial check of every piece. That check gated requests piece by
// piece, and in the peer benchmark a leecher sometimes stopped requesting
// for ~15 s at start (with the library's storage too). Pieces with no
// record whose bytes are on disk stay unknown and are hashed.
func (p *filePiece) Completion() storage.Completion {
	c, err := p.t.completion.Get(p.key())
	if err != nil {
		c.Err = errors.Join(c.Err, err)
	}
	if c.Err != nil || (c.Ok && !c.Complete) {
		return c
	}
	onDisk, err := p.onDisk()
	switch {
	case err != nil:
		return storage.Completion{Err: fmt.Errorf("checking piece %d: %w", p.index, err)}
	case onDisk:
		return c
	case c.Ok: // recorded complete, but the bytes are gone
		if err := p.t.completion.Set(p.key(), false); err != nil {
			return storage.Completion{Err: err}
		}
	}
	return storage.Completion{Ok: true, Complete: false}
}

// onDisk says whether the files are long enough to hold the piece.
func (p *filePiece) onDisk() (bool, error) {
	var statErr error
	missing := false
	p.t.spans(p.off, p.length, func(f *torrentFile, fileOff, _, length int64) bool {
		if f.pad {
			return true
		}
		st, err := os.Stat(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = true
		case err != nil:
			statErr = err
		case st.Size() < fileOff+length:
			missing = true
		}
		return !missing && statErr == nil
	})
	return !missing, statErr
}

// Package streamverify computes the SHA-256 of each file of a torrent while
// the torrent downloads: as pieces complete, it reads back and hashes the
// part of every file that is covered by a contiguous run of complete pieces
// from the file's start, so a file's hash is finished as soon as its last
// piece is in, instead of after the whole torrent.
//
// It reads the bytes back from storage (soon after they were written, so
// mostly from the page cache) rather than teeing the write path: pieces
// arrive out of order, and only bytes of pieces that passed their piece
// hash are ever read.
//
// Memory is bounded: per file a hash state while it is partly hashed, per
// piece one bit, per worker one read buffer. Work is bounded by the number
// of workers and, across verifiers, by a shared Gate.
package streamverify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
)

// File is one file's extent in the torrent (v1: files back to back, from
// offset 0, no gaps) and, optionally, the SHA-256 it must have.
type File struct {
	Offset, Length int64
	Want           []byte // nil: compute the sum only
}

// Handle reads one file. If it also has a Sync method (an *os.File does),
// a file whose sum matches Want is synced before it counts as verified.
// If it has a StartWriteback method, each range is passed to it once
// hashed, so that the disk writes start while the download runs and the
// final Sync has little left to wait for.
type Handle interface {
	io.ReaderAt
	io.Closer
}

type writebacker interface {
	StartWriteback(off, n int64) error
}

// ErrMismatch is wrapped by the error of a file whose SHA-256 differs from
// its Want.
var ErrMismatch = errors.New("sha256 does not match")

// Config describes a torrent to verify.
type Config struct {
	PieceLength int64
	Files       []File
	// Open opens file i for reading.
	Open func(i int) (Handle, error)
	// Workers hashing this torrent at once (default 2).
	Workers int
	// Gate, if set, bounds hashing across every verifier that shares it.
	Gate *Gate
	// BufSize is the read size per worker (default 256 KiB).
	BufSize int
}

// Gate bounds how many workers hash at once across verifiers (one agent,
// many downloads).
type Gate struct{ slots chan struct{} }

// NewGate returns a gate that lets n workers hash at once.
func NewGate(n int) *Gate { return &Gate{slots: make(chan struct{}, max(n, 1))} }

func (g *Gate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gate) leave() {
	if g != nil {
		<-g.slots
	}
}

// Result is what is known about one file.
type Result struct {
	Done bool   // hashed to its end (Sum set) or failed (Err set)
	Sum  []byte // its SHA-256, once Done without a read error
	// Verified: Sum equals Want and the file was synced.
	Verified bool
	Err      error // read or sync error, or ErrMismatch
}

type fileState struct {
	File
	firstPiece, lastPiece int // pieces covering the file; lastPiece < firstPiece if empty
	pos                   int64
	h                     hash.Hash // nil when pos == 0
	gen                   uint64    // bumped when a hashed piece is lost
	queued, running       bool
	res                   Result
}

// Verifier hashes one torrent's files as its pieces complete.
type Verifier struct {
	cfg     Config
	nPieces int

	mu       sync.Mutex
	cond     *sync.Cond // queue changed, a file settled, or closed
	complete []bool     // by piece
	frontier int        // first piece not complete
	files    []*fileState
	queue    []int // files to look at, FIFO
	unsettle int   // files not Done
	closed   bool
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// New checks the layout and returns a verifier; Start runs it.
func New(cfg Config) (*Verifier, error) {
	if cfg.PieceLength <= 0 {
		return nil, fmt.Errorf("streamverify: piece length %d", cfg.PieceLength)
	}
	if cfg.Open == nil {
		return nil, errors.New("streamverify: no Open")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.BufSize <= 0 {
		cfg.BufSize = 256 << 10
	}
	v := &Verifier{cfg: cfg}
	v.cond = sync.NewCond(&v.mu)
	var off int64
	for i, f := range cfg.Files {
		if f.Offset != off || f.Length < 0 {
			return nil, fmt.Errorf("streamverify: file %d at %d+%d, want offset %d (files back to back)", i, f.Offset, f.Length, off)
		}
		if f.Want != nil && len(f.Want) != sha256.Size {
			return nil, fmt.Errorf("streamverify: file %d: want is %d bytes, not a SHA-256", i, len(f.Want))
		}
		off += f.Length
		fs := &fileState{File: f, firstPiece: int(f.Offset / cfg.PieceLength), lastPiece: -1}
		if f.Length > 0 {
			fs.lastPiece = int((f.Offset + f.Length - 1) / cfg.PieceLength)
		}
		v.files = append(v.files, fs)
	}
	v.nPieces = int((off + cfg.PieceLength - 1) / cfg.PieceLength)
	v.complete = make([]bool, v.nPieces)
	v.unsettle = len(v.files)
	for _, f := range v.files {
		if f.Length == 0 {
			v.finishLocked(f, sha256.New(), nil) // no piece covers it; nothing to read
		}
	}
	return v, nil
}

// NumPieces is the number of pieces of the layout.
func (v *Verifier) NumPieces() int { return v.nPieces }

// Start runs the workers until ctx ends or Close. Call it once.
func (v *Verifier) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	v.mu.Lock()
	v.stop = cancel
	v.mu.Unlock()
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		<-ctx.Done()
		v.mu.Lock()
		v.closed = true
		v.cond.Broadcast()
		v.mu.Unlock()
	}()
	for range v.cfg.Workers {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			buf := make([]byte, v.cfg.BufSize)
			for {
				i, ok := v.next()
				if !ok {
					return
				}
				v.step(ctx, i, buf)
			}
		}()
	}
}

// Close stops the workers and waits for them.
func (v *Verifier) Close() {
	v.mu.Lock()
	v.closed = true
	stop := v.stop
	v.cond.Broadcast()
	v.mu.Unlock()
	if stop != nil {
		stop()
	}
	v.wg.Wait()
}

// SetPiece records that piece i is complete (its piece hash passed) or no
// longer is. Losing a piece discards the hash of every file that had read
// from it; it is hashed again once the piece is back. It never blocks on
// hashing.
func (v *Verifier) SetPiece(i int, complete bool) {
	if i < 0 || i >= v.nPieces {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.setPieceLocked(i, complete)
}

// SetAll records every piece complete (the torrent is).
func (v *Verifier) SetAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range v.nPieces {
		v.setPieceLocked(i, true)
	}
}

func (v *Verifier) setPieceLocked(i int, complete bool) {
	if v.complete[i] == complete {
		return
	}
	v.complete[i] = complete
	if complete {
		for v.frontier < v.nPieces && v.complete[v.frontier] {
			v.frontier++
		}
	} else if i < v.frontier {
		v.frontier = i
	}
	pieceBegin := int64(i) * v.cfg.PieceLength
	for fi := v.firstFile(pieceBegin); fi < len(v.files); fi++ {
		f := v.files[fi]
		if f.Length > 0 && f.firstPiece > i {
			break
		}
		if f.Length == 0 || f.lastPiece < i {
			continue
		}
		if complete {
			v.enqueueLocked(fi)
			continue
		}
		// Lost: anything read from this piece may be stale, including
		// what a running step has read but not committed.
		if f.running || f.res.Done || f.Offset+f.pos > pieceBegin && f.pos > 0 {
			v.resetLocked(f)
		}
	}
}

// firstFile is the index of the first file that ends after off, or of the
// first file starting at off (empty files included).
func (v *Verifier) firstFile(off int64) int {
	return sort.Search(len(v.files), func(i int) bool {
		f := v.files[i]
		return f.Offset+f.Length > off || (f.Length == 0 && f.Offset >= off)
	})
}

func (v *Verifier) resetLocked(f *fileState) {
	if f.res.Done {
		v.unsettle++
	}
	f.pos, f.h, f.res = 0, nil, Result{}
	f.gen++
}

func (v *Verifier) enqueueLocked(fi int) {
	f := v.files[fi]
	if f.queued || f.res.Done {
		return
	}
	f.queued = true
	v.queue = append(v.queue, fi)
	v.cond.Broadcast() // not Signal: Wait and the workers share cond, and a woken Wait would swallow the wake-up a worker needed
}

// next waits for a file to work on; false once closed.
func (v *Verifier) next() (int, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		if v.closed {
			return 0, false
		}
		for len(v.queue) > 0 {
			fi := v.queue[0]
			v.queue = v.queue[1:]
			if len(v.queue) == 0 {
				v.queue = nil // let the backing array go
			}
			f := v.files[fi]
			if f.running {
				continue // its worker looks again when done (queued stays set)
			}
			f.queued, f.running = false, true
			return fi, true
		}
		v.cond.Wait()
	}
}

// availableLocked is how many bytes from the file's start are covered by
// complete pieces.
func (v *Verifier) availableLocked(f *fileState) int64 {
	p := int((f.Offset + f.pos) / v.cfg.PieceLength)
	for p <= f.lastPiece && v.complete[p] {
		p++
	}
	end := min(int64(p)*v.cfg.PieceLength, f.Offset+f.Length)
	return max(end-f.Offset, f.pos)
}

// step hashes what file fi has available, then releases it.
func (v *Verifier) step(ctx context.Context, fi int, buf []byte) {
	f := v.files[fi]
	defer func() {
		v.mu.Lock()
		f.running = false
		if f.queued {
			f.queued = false
			v.enqueueLocked(fi) // an event came in while it ran
		}
		v.mu.Unlock()
	}()
	if err := v.cfg.Gate.enter(ctx); err != nil {
		return
	}
	defer v.cfg.Gate.leave()

	v.mu.Lock()
	if f.res.Done {
		v.mu.Unlock()
		return
	}
	end := v.availableLocked(f)
	pos, gen, h := f.pos, f.gen, f.h
	v.mu.Unlock()
	if end <= pos {
		return
	}
	if h == nil {
		h = sha256.New()
	} else {
		h = cloneHash(h) // f.h stays as it was until this step commits
	}
	fh, err := v.cfg.Open(fi)
	if err != nil {
		v.fail(f, gen, fmt.Errorf("open: %w", err))
		return
	}
	defer fh.Close()
	if wb, ok := fh.(writebacker); ok {
		from := pos
		defer func() {
			if pos > from {
				_ = wb.StartWriteback(from, pos-from) // a hint; Sync decides
			}
		}()
	}
	for pos < end {
		if ctx.Err() != nil {
			return
		}
		n := int(min(int64(len(buf)), end-pos))
		k, err := fh.ReadAt(buf[:n], pos)
		h.Write(buf[:k])
		pos += int64(k)
		if k < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("read at %d: %w", pos, io.ErrUnexpectedEOF)
			}
			v.fail(f, gen, err)
			return
		}
	}
	if pos < f.Length {
		v.mu.Lock()
		if f.gen == gen {
			f.pos, f.h = pos, h
			if v.availableLocked(f) > pos {
				f.queued = true // more came in: the release below re-enqueues it
			}
		}
		v.mu.Unlock()
		return
	}
	sum := h.Sum(nil)
	var serr error
	if f.Want != nil && bytes.Equal(sum, f.Want) {
		// Durable before it counts: a crash after a release is recorded
		// verified must not lose bytes of it.
		if s, ok := fh.(interface{ Sync() error }); ok {
			if err := s.Sync(); err != nil {
				serr = fmt.Errorf("sync: %w", err)
			}
		}
	}
	v.mu.Lock()
	if f.gen == gen {
		f.pos = pos
		v.finishLocked(f, h, serr)
	}
	v.mu.Unlock()
}

func (v *Verifier) fail(f *fileState, gen uint64, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f.gen != gen || f.res.Done {
		return
	}
	f.h = nil
	f.res = Result{Done: true, Err: err}
	v.unsettle--
	v.cond.Broadcast()
}

// finishLocked records the sum of a fully hashed file.
func (v *Verifier) finishLocked(f *fileState, h hash.Hash, syncErr error) {
	sum := h.Sum(nil)
	f.h = nil
	f.res = Result{Done: true, Sum: sum}
	switch {
	case f.Want != nil && !bytes.Equal(sum, f.Want):
		f.res.Err = fmt.Errorf("%w: got %x, want %x", ErrMismatch, sum, f.Want)
	case syncErr != nil:
		f.res.Err = syncErr
	case f.Want != nil:
		f.res.Verified = true
	}
	v.unsettle--
	v.cond.Broadcast()
}

// cloneHash copies a SHA-256 state, so a step abandoned midway (a piece
// lost, ctx ended) leaves the committed state untouched.
func cloneHash(h hash.Hash) hash.Hash {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		panic("streamverify: sha256 state cannot be copied")
	}
	b, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic(err)
	}
	return c
}

// Result returns what is known about file i.
func (v *Verifier) Result(i int) Result {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.files[i].res
}

// Remaining is how many bytes of the files are not hashed yet.
func (v *Verifier) Remaining() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for _, f := range v.files {
		if !f.res.Done {
			n += f.Length - f.pos
		}
	}
	return n
}

// Frontier is the first piece that is not complete (NumPieces when all
// are): hashing can only reach the files before it.
func (v *Verifier) Frontier() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.frontier
}

// Wait returns once every file is Done (hashed or failed), or with an
// error when ctx ends or the verifier is closed first. Files finish only
// once their pieces are complete: call it after SetAll.
func (v *Verifier) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		v.mu.Lock()
		v.cond.Broadcast()
		v.mu.Unlock()
	})
	defer stop()
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.unsettle > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if v.closed {
			return errClosed
		}
		v.cond.Wait()
	}
	return nil
}

var errClosed = errors.New("streamverify: closed")

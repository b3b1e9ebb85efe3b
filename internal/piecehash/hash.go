// Package piecehash computes a release's BitTorrent v1 piece hashes and each
// file's SHA-256 in one parallel read pass (Hash), and builds the v1 info
// dictionary from the result (BuildInfo).
package piecehash

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/edsrzf/mmap-go"

	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/release"
)

// FileEntry is one input file of a release.
type FileEntry struct {
	Path   []string // path components inside the release, e.g. {"bin","app"}; validated
	Source string   // local filesystem path to read
	Size   int64
	// Pad marks a BEP 47 pad file (Path {".pad", "<Size>"}, no Source):
	// Size zero bytes that are hashed into the pieces but never read and
	// have no SHA-256 (see AlignFiles).
	Pad bool
}

// Result is what one read pass over the files yields.
type Result struct {
	PieceLength int64
	// Pieces holds the concatenated 20-byte SHA-1 piece hashes (BEP 3, v1, no
	// pad files; pieces span file boundaries).
	Pieces []byte
	// SHA256 holds each file's SHA-256, in the order of the input files.
	SHA256    [][32]byte
	TotalSize int64
}

// Piece length limits. 16 KiB is the BitTorrent block size, so nothing
// smaller makes sense; above 64 MiB clients start refusing torrents
// (libtorrent's default limit is 128 MiB, others are lower) and one bad piece
// costs too much to fetch again.
const (
	MinPieceLength = 16 << 10
	MaxPieceLength = 64 << 20

	// Bounds for ChoosePieceLength. Large pieces moved data much faster
	// between peers in a probe (fewer requests and hash checks per byte);
	// below 256 KiB the per-piece overhead dominates. Above 16 MiB too few
	// pieces remain to spread origin shards over the swarm.
	autoMinPieceLength = 256 << 10
	autoMaxPieceLength = 16 << 20
	// autoTargetPieces is the most pieces ChoosePieceLength aims for before it
	// doubles the piece length, so that unclamped results land in (256, 512].
	autoTargetPieces = 512
)

// readChunk is how much a worker hashes at a time: one pread, or one slice
// of a mapped file. Small enough that the bytes are still in the core's L2
// cache when SHA-256 follows SHA-1 over them (and a pread buffer stays in
// L2), large enough that the per-call costs vanish.
const readChunk = 256 << 10

// progressStep is the least number of bytes between two progress calls.
const progressStep = 4 << 20

// ChoosePieceLength picks a piece length for throughput: the smallest power of
// two that gives at most 512 pieces (so roughly 256–512, well inside the
// 256–1024 range the swarm likes), clamped to [256 KiB, 16 MiB].
func ChoosePieceLength(totalSize int64) int64 {
	pl := int64(autoMinPieceLength)
	for pl < autoMaxPieceLength && ceilDiv(totalSize, pl) > autoTargetPieces {
		pl <<= 1
	}
	return pl
}

// ParsePieceLength parses a piece length given by a user: "auto" (returned as
// 0, meaning "let ChoosePieceLength decide"), a plain byte count ("262144"),
// or a size as internal/bytesize reads it ("256KiB", "256K", "4MiB", "4M";
// "4MB" is 4,000,000 bytes, not a power of two). The result must be a power
// of two between 16 KiB and 64 MiB.
func ParsePieceLength(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "auto") {
		return 0, nil
	}
	size, err := bytesize.Parse(t)
	n := int64(size)
	if err != nil {
		return 0, fmt.Errorf("piece length: %w", err)
	}
	if err := checkPieceLength(n); err != nil {
		return 0, fmt.Errorf("piece length %q: %w", s, err)
	}
	return n, nil
}

func checkPieceLength(n int64) error {
	switch {
	case n <= 0 || n&(n-1) != 0:
		return fmt.Errorf("%d is not a power of two (try 256KiB, 1MiB, 4MiB or auto)", n)
	case n < MinPieceLength:
		return fmt.Errorf("%d is below the minimum of 16 KiB", n)
	case n > MaxPieceLength:
		return fmt.Errorf("%d is above the maximum of 64 MiB", n)
	}
	return nil
}

// CheckPath refuses names that clients would map to a different file, escape
// the download directory with, or that are not portable catalog keys
// (release.ValidatePathComponent).
func CheckPath(path []string) error {
	if len(path) == 0 {
		return errors.New("empty path")
	}
	for _, c := range path {
		if err := release.ValidatePathComponent(c); err != nil {
			return err
		}
	}
	return nil
}

// comparePaths orders paths component by component (bytewise), which keeps
// each directory's files together and is the order of a BEP 52 file tree, so
// a hybrid v1+v2 torrent can later be built from the same file list.
func comparePaths(a, b []string) int {
	return slices.Compare(a, b)
}

// SortFiles puts files in the order of a torrent's file list (comparePaths).
func SortFiles(files []FileEntry) {
	slices.SortStableFunc(files, func(a, b FileEntry) int { return comparePaths(a.Path, b.Path) })
}

// CheckUniquePaths refuses two files with the same path, and a path that is a
// file in one place and a directory in another (possible with several
// arguments), since no client could write both.
func CheckUniquePaths(files []FileEntry) error {
	seen := make(map[string]int, len(files))
	for i, f := range files {
		if f.Pad {
			continue // pads of one size share a path (BEP 47)
		}
		key := strings.Join(f.Path, "/")
		if j, ok := seen[key]; ok {
			return fmt.Errorf("duplicate path %q in release: from %s and %s", key, files[j].Source, f.Source)
		}
		seen[key] = i
	}
	// The manifest compares paths case-insensitively (case-insensitive file
	// systems would merge them): say so before hashing, not after.
	folded := make(map[string]int, len(files))
	for i, f := range files {
		if f.Pad {
			continue
		}
		key := strings.ToLower(strings.Join(f.Path, "/"))
		if j, ok := folded[key]; ok {
			return fmt.Errorf("paths %q and %q in release differ only in case (from %s and %s)", strings.Join(files[j].Path, "/"), strings.Join(f.Path, "/"), files[j].Source, f.Source)
		}
		folded[key] = i
	}
	for _, f := range files {
		if f.Pad {
			continue
		}
		for k := 1; k < len(f.Path); k++ {
			dir := strings.Join(f.Path[:k], "/")
			if j, ok := seen[dir]; ok {
				return fmt.Errorf("path %q in release is both a file (from %s) and a directory (of %s)", dir, files[j].Source, f.Source)
			}
		}
	}
	return nil
}

// BuildInfo returns the v1 info dictionary for files hashed into r. It always
// uses the multi-file form, even for one file, so that every release lands
// under <name>/ the same way for every client and for the web seed.
func BuildInfo(name string, files []FileEntry, r *Result) metainfo.Info {
	info := metainfo.Info{
		Name:        name,
		PieceLength: r.PieceLength,
		Pieces:      r.Pieces,
		Files:       make([]metainfo.FileInfo, len(files)),
	}
	for i, f := range files {
		info.Files[i] = metainfo.FileInfo{Length: f.Size, Path: slices.Clone(f.Path)}
		if f.Pad {
			info.Files[i].Attr = "p"
		}
	}
	return info
}

// Options says how Hash reads and what it computes.
type Options struct {
	// PieceLength is a power of two within [MinPieceLength, MaxPieceLength];
	// 0 means ChoosePieceLength of the total size.
	PieceLength int64
	// Workers is the number of hashing goroutines; <= 0 means runtime.NumCPU().
	Workers int
	// Progress, if not nil, is called with the cumulative number of bytes
	// fully hashed, at most every few MiB and once at the end; calls may come
	// from any goroutine but never overlap, and the numbers only grow.
	Progress func(done int64)
	// PiecesOnly skips the per-file SHA-256 (Result.SHA256 stays nil).
	PiecesOnly bool
	// Observe, if not nil, is asked once per non-empty file (by input
	// index) for a writer that then receives the file's bytes in order,
	// from the goroutine running the file's SHA-256, without a second read
	// (publish folds delta matching in here). Writes for one file never
	// overlap; different files' writers run concurrently. It needs the
	// SHA-256 pass, so it is refused with PiecesOnly.
	Observe func(file int) io.Writer
}

// Hash reads every file once, in parallel, computing the SHA-1 piece hashes
// and (unless opts.PiecesOnly) each file's SHA-256 in the same pass.
func Hash(ctx context.Context, files []FileEntry, opts Options) (*Result, error) {
	if opts.Observe != nil && opts.PiecesOnly {
		return nil, errors.New("hash: Observe needs the SHA-256 pass, not PiecesOnly")
	}
	return hashFiles(ctx, files, opts.PieceLength, opts.Workers, opts.Progress, !opts.PiecesOnly, opts.Observe)
}

// How the hashing works
//
// The files are one byte stream cut into pieces. A worker takes a slot from
// a bounded pool, claims the next piece and goes through it in L2-sized
// chunks, feeding each chunk to SHA-1 while it is hot in the cache. Pieces
// are independent, so SHA-1 runs on all workers at once.
//
// Bytes come from the page cache in one of two ways. Files of at least
// mmapMinSize are memory-mapped and hashed in place: no copy at all, which
// on a page-cached file saved about 10% of the CPU time of SHA-1 alone, and
// with two cores hashing is CPU-bound. Smaller files (and any file the
// system refuses to map) are read with pread (ReadAt: workers never contend
// for a file offset) into the slot's buffer. A mapped file that shrinks
// under us would fault; the workers turn that fault into an error (see
// work).
//
// A file's SHA-256 must see its bytes in order, but pieces finish out of
// order. Each file therefore has a "chain": the index of the next piece its
// SHA-256 needs, and whether some worker is running it right now. A worker
// that finished a piece's SHA-1 leaves the piece in the ready set and, for
// each file in it whose chain is idle and waiting for exactly this piece,
// runs that chain as far as consecutive ready pieces allow. Nobody waits for
// a chain: a worker that finds it busy goes back to reading. On two cores
// this balances itself: one worker ends up carrying the SHA-256 of a big
// file while the other reads and SHA-1s ahead, and when the chain catches up
// its worker returns to reading. Different files' chains run in parallel.
// When a piece's only file has its chain idle and waiting for that piece,
// the worker takes the chain before reading and feeds SHA-256 from the same
// hot chunks as SHA-1 ("inline").
//
// Every byte is read from the file once; the chains use the mapping or the
// slot's buffer, which goes back to the pool when SHA-1 and every chain are
// done with the piece. The pool holds 2*workers+1 slots (workers without
// SHA-256), which bounds both the buffers and how far readers run ahead of
// the chains (so that pages are still cached when a chain gets to them). A
// slot is taken before a piece is claimed, so the lowest unfinished piece
// is always held by a running worker and chains can always advance: no
// deadlock however small the pool.
//
// This is also where v2 piece layers and file roots would be computed
// later: they are per-file SHA-256 trees over the same in-order bytes.

// mmapMinSize is the smallest file that is memory-mapped rather than read.
// Mapping costs a few syscalls and page-table work up front, which a copy of
// a small file costs less than.
const mmapMinSize = 1 << 20

// useMmap lets tests and benchmarks force the pread path.
var useMmap = true

// testHookOpened, if set, is called after a file is opened (and mapped), so
// tests can change the file underneath the hasher.
var testHookOpened func(path string)

type hashFile struct {
	FileEntry
	index      int   // position in the input
	start      int64 // offset of the file in the torrent's byte stream
	firstPiece int
	lastPiece  int

	// Open handle (and mapping), shared by the pieces that overlap the file:
	// opened by the first to read it, closed when nothing needs it any more.
	mu      sync.Mutex
	f       *os.File
	m       mmap.MMap // the file's bytes if mapped, else nil
	openErr error
	refs    int // piece reads and SHA-256 steps still to come

	// SHA-256 chain, guarded by hasher.chainMu (sum is used only by the
	// worker that owns the chain).
	sum     hash.Hash
	next    int  // next piece the chain needs
	running bool // a worker owns the chain right now
	done    bool
}

// slot is a place in the pool; its buffer is allocated on the first pread,
// so hashing big mapped files allocates none.
type slot struct {
	buf []byte
}

// pieceBuf is a piece whose SHA-1 is done, waiting for SHA-256 chains.
type pieceBuf struct {
	slot *slot
	refs int // chains that still need this piece; guarded by chainMu
}

type hasher struct {
	files      []*hashFile // non-empty files only, in stream order
	pl         int64
	total      int64
	numPieces  int
	withSHA256 bool

	ctx     context.Context
	cancel  context.CancelCauseFunc
	nextIdx atomic.Int64
	slots   chan *slot // the pool

	pieces []byte // SHA-1s, written by workers at disjoint offsets

	chainMu sync.Mutex
	ready   map[int]*pieceBuf

	progress     func(int64)
	done         atomic.Int64
	progressMu   sync.Mutex
	lastReported atomic.Int64 // written under progressMu
}

func hashFiles(ctx context.Context, entries []FileEntry, pieceLength int64, workers int, progress func(int64), withSHA256 bool, observe func(int) io.Writer) (*Result, error) {
	if len(entries) == 0 {
		return nil, errors.New("hash: no files")
	}
	var total int64
	for _, e := range entries {
		if e.Pad {
			if err := checkPad(e); err != nil {
				return nil, err
			}
		} else if err := CheckPath(e.Path); err != nil {
			return nil, fmt.Errorf("hash %s: %w", e.Source, err)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("hash %s: negative size %d", e.Source, e.Size)
		}
		if total+e.Size < total {
			return nil, errors.New("hash: total size overflows")
		}
		total += e.Size
	}
	if err := CheckUniquePaths(entries); err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	if total == 0 {
		// Clients refuse a torrent without pieces, and there would be
		// nothing to transfer anyway.
		return nil, errors.New("hash: all files are empty; nothing to publish")
	}
	if pieceLength == 0 {
		pieceLength = ChoosePieceLength(total)
	}
	if err := checkPieceLength(pieceLength); err != nil {
		return nil, fmt.Errorf("hash: piece length %w", err)
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	numPieces64 := ceilDiv(total, pieceLength)
	if numPieces64 > int64(maxInt/sha1.Size) {
		return nil, errors.New("hash: too many pieces; use a larger piece length")
	}
	numPieces := int(numPieces64)
	workers = min(workers, numPieces)

	res := &Result{PieceLength: pieceLength, TotalSize: total}
	if withSHA256 {
		res.SHA256 = make([][32]byte, len(entries))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h := &hasher{
		pl:         pieceLength,
		total:      total,
		numPieces:  numPieces,
		withSHA256: withSHA256,
		ctx:        ctx,
		cancel:     cancel,
		pieces:     make([]byte, numPieces*sha1.Size),
		ready:      make(map[int]*pieceBuf),
		progress:   progress,
	}
	var off int64
	for i, e := range entries {
		if e.Size == 0 {
			// Nothing to read, but make sure the file is still there and
			// still empty, as the manifest will say.
			if err := checkEmptyFile(e); err != nil {
				return nil, err
			}
			if withSHA256 {
				res.SHA256[i] = sha256.Sum256(nil)
			}
			continue
		}
		f := &hashFile{
			FileEntry:  e,
			index:      i,
			start:      off,
			firstPiece: int(off / pieceLength),
			lastPiece:  int((off + e.Size - 1) / pieceLength),
		}
		f.next = f.firstPiece
		f.refs = f.lastPiece - f.firstPiece + 1
		if e.Pad {
			// Zeros: nothing to open, no chain.
			f.refs, f.done = 0, true
		} else if withSHA256 {
			f.refs *= 2
			f.sum = sha256.New()
			if observe != nil {
				if w := observe(i); w != nil {
					f.sum = observedHash{f.sum, w}
				}
			}
		}
		h.files = append(h.files, f)
		off += e.Size
	}
	nslots := workers
	if withSHA256 {
		// Pieces wait in the ready set for their chains; a spare slot per
		// worker lets readers run a little ahead of a chain.
		nslots = 2*workers + 1
	}
	h.slots = make(chan *slot, nslots)
	for range nslots {
		h.slots <- &slot{}
	}

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { (&worker{h: h, sha: sha1.New()}).run() })
	}
	wg.Wait()
	// Close whatever an error left open.
	for _, f := range h.files {
		f.close()
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	res.Pieces = h.pieces
	if withSHA256 {
		for _, f := range h.files {
			if f.Pad {
				continue
			}
			if !f.done {
				return nil, fmt.Errorf("hash %s: internal error: SHA-256 incomplete", f.Source)
			}
			f.sum.Sum(res.SHA256[f.index][:0])
		}
	}
	h.report()
	return res, nil
}

// observedHash is a file's SHA-256 that also hands every byte to an
// Options.Observe writer, in the order the hash sees them.
type observedHash struct {
	hash.Hash
	w io.Writer
}

func (o observedHash) Write(p []byte) (int, error) {
	o.w.Write(p)
	return o.Hash.Write(p)
}

const maxInt = int(^uint(0) >> 1)

// zeros feeds pad files to SHA-1.
var zeros = make([]byte, readChunk)

// PadPath is the torrent path of a pad file of n bytes, as BEP 47
// suggests; pads of one size share it.
func PadPath(n int64) []string {
	return []string{".pad", strconv.FormatInt(n, 10)}
}

func checkPad(e FileEntry) error {
	if e.Size <= 0 || e.Size >= MaxPieceLength || e.Source != "" || !slices.Equal(e.Path, PadPath(e.Size)) {
		return fmt.Errorf("hash: bad pad file %q of %d bytes", strings.Join(e.Path, "/"), e.Size)
	}
	return nil
}

// AlignFiles returns files with a pad file inserted before each file i for
// which align(i) holds and that would otherwise start inside a piece, so
// that it starts on a piece boundary (media segments, BEP 47). It also
// returns the pad bytes added.
func AlignFiles(files []FileEntry, pieceLength int64, align func(i int) bool) ([]FileEntry, int64) {
	out := make([]FileEntry, 0, len(files))
	var off, pad int64
	for i, f := range files {
		if align(i) && f.Size > 0 {
			if r := off % pieceLength; r != 0 {
				n := pieceLength - r
				out = append(out, FileEntry{Path: PadPath(n), Size: n, Pad: true})
				off += n
				pad += n
			}
		}
		out = append(out, f)
		off += f.Size
	}
	return out, pad
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0, without overflow.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

func checkEmptyFile(e FileEntry) error {
	fi, err := os.Stat(e.Source)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("hash %s: not a regular file", e.Source)
	}
	if fi.Size() != 0 {
		return fmt.Errorf("hash %s: file is %d bytes now, listed as empty; did it change?", e.Source, fi.Size())
	}
	return nil
}

func (h *hasher) fail(err error) {
	h.cancel(err)
}

func (h *hasher) getSlot() (*slot, bool) {
	select {
	case s := <-h.slots:
		return s, true
	case <-h.ctx.Done():
		return nil, false
	}
}

func (h *hasher) putSlot(s *slot) {
	h.slots <- s // never blocks: there are only as many slots as places
}

func (h *hasher) pieceSize(idx int) int64 {
	return min(h.pl, h.total-int64(idx)*h.pl)
}

// filesOf returns the files overlapping piece idx.
func (h *hasher) filesOf(idx int) []*hashFile {
	start := int64(idx) * h.pl
	end := start + h.pieceSize(idx)
	i := sort.Search(len(h.files), func(i int) bool {
		f := h.files[i]
		return f.start+f.Size > start
	})
	j := i
	for j < len(h.files) && h.files[j].start < end {
		j++
	}
	return h.files[i:j]
}

// worker is one hashing goroutine's state.
type worker struct {
	h   *hasher
	sha hash.Hash // SHA-1, reused for every piece
	// cur is the file whose bytes the worker is touching, to name it if a
	// mapped file faults.
	cur *hashFile
}

func (w *worker) run() {
	h := w.h
	// Reading a mapped file that another process truncated faults (SIGBUS).
	// Have the runtime turn that into a panic in this goroutine, and the
	// panic into an error, rather than crash the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok || w.cur == nil {
				panic(r)
			}
			h.fail(fmt.Errorf("hash %s: file shrank while being read; did it change during hashing?", w.cur.Source))
		}
	}()
	for h.ctx.Err() == nil {
		s, ok := h.getSlot()
		if !ok {
			return
		}
		idx := int(h.nextIdx.Add(1) - 1)
		if idx >= h.numPieces {
			h.putSlot(s)
			return
		}
		var inline *hashFile
		if h.withSHA256 {
			inline = h.claimInline(idx)
		}
		w.sha.Reset()
		if err := w.readPiece(idx, s, inline); err != nil {
			h.fail(err)
			return
		}
		w.sha.Sum(h.pieces[idx*sha1.Size : idx*sha1.Size : (idx+1)*sha1.Size])
		if !h.withSHA256 {
			h.putSlot(s)
			h.addDone(h.pieceSize(idx))
			continue
		}
		w.finishPiece(idx, s, inline)
	}
}

// claimInline takes the SHA-256 chain of the file if piece idx lies inside
// one file and that chain is idle and waiting for exactly this piece, so
// that SHA-256 can be fed from the same hot chunks as SHA-1.
func (h *hasher) claimInline(idx int) *hashFile {
	var f *hashFile
	for _, o := range h.filesOf(idx) {
		if o.Pad {
			continue
		}
		if f != nil {
			return nil
		}
		f = o
	}
	if f == nil {
		return nil
	}
	h.chainMu.Lock()
	defer h.chainMu.Unlock()
	if f.running || f.next != idx {
		return nil
	}
	f.running = true
	return f
}

// readPiece feeds piece idx to SHA-1 (and to inline's SHA-256), chunk by
// chunk, from the files' mappings or read into the slot's buffer.
func (w *worker) readPiece(idx int, s *slot, inline *hashFile) error {
	h := w.h
	start := int64(idx) * h.pl
	end := start + h.pieceSize(idx)
	for _, f := range h.filesOf(idx) {
		from := max(start, f.start)
		to := min(end, f.start+f.Size)
		if f.Pad {
			for off := from; off < to; {
				n := min(to-off, int64(len(zeros)))
				w.sha.Write(zeros[:n])
				off += n
			}
			continue
		}
		file, m, err := f.acquire()
		if err != nil {
			return err
		}
		w.cur = f
		for off := from; off < to; {
			n := min(to-off, readChunk)
			var chunk []byte
			if m != nil {
				chunk = m[off-f.start : off-f.start+n]
			} else {
				chunk = h.bufFor(s, off-start, n)
				if err := h.readAt(f, file, chunk, off-f.start); err != nil {
					return err
				}
			}
			w.sha.Write(chunk)
			if inline != nil {
				inline.sum.Write(chunk)
			}
			off += n
		}
		w.cur = nil
		if err := f.release(); err != nil {
			return err
		}
	}
	return nil
}

// bufFor returns where in the slot's buffer to read n bytes at offset pos of
// the piece. With SHA-256 the whole piece is kept for the chains; without,
// one chunk-sized buffer is reused.
func (h *hasher) bufFor(s *slot, pos, n int64) []byte {
	if !h.withSHA256 {
		if s.buf == nil {
			s.buf = make([]byte, min(h.pl, readChunk))
		}
		return s.buf[:n]
	}
	if s.buf == nil {
		s.buf = make([]byte, h.pl)
	}
	return s.buf[pos : pos+n]
}

func (h *hasher) readAt(f *hashFile, file *os.File, p []byte, off int64) error {
	if err := h.ctx.Err(); err != nil {
		return err
	}
	n, err := file.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF {
		return fmt.Errorf("hash %s: file ended at %d bytes, listed as %d; did it change during hashing?", f.Source, off+int64(n), f.Size)
	}
	return fmt.Errorf("hash: %w", err)
}

// acquire returns the file's open handle and mapping (nil if not mapped),
// opening it on first use.
func (f *hashFile) acquire() (*os.File, mmap.MMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f != nil || f.openErr != nil {
		return f.f, f.m, f.openErr
	}
	file, err := os.Open(f.Source)
	if err != nil {
		f.openErr = fmt.Errorf("hash: %w", err)
		return nil, nil, f.openErr
	}
	if err := f.checkSize(file); err != nil {
		file.Close()
		f.openErr = err
		return nil, nil, err
	}
	f.f = file
	if useMmap && f.Size >= mmapMinSize && f.Size <= int64(maxInt) {
		// Map exactly the listed size. If the system will not map this
		// file (some network and FUSE file systems), pread works anyway.
		if m, err := mmap.MapRegion(file, int(f.Size), mmap.RDONLY, 0, 0); err == nil {
			f.m = m
		}
	}
	if testHookOpened != nil {
		testHookOpened(f.Source)
	}
	return f.f, f.m, nil
}

// release drops one reference (a piece read or a SHA-256 step). After the
// last one it checks that the file did not change size meanwhile (a shrink
// shows up earlier, as a short read or a fault) and closes it.
func (f *hashFile) release() error {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0 && f.f != nil
	f.mu.Unlock()
	if !last {
		return nil
	}
	err := f.checkSize(f.f)
	if cerr := f.close(); err == nil {
		err = cerr
	}
	return err
}

// close unmaps and closes the file if it is open.
func (f *hashFile) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.m != nil {
		err = f.m.Unmap()
		f.m = nil
	}
	if f.f != nil {
		if cerr := f.f.Close(); err == nil {
			err = cerr
		}
		f.f = nil
	}
	if err != nil {
		return fmt.Errorf("hash %s: %w", f.Source, err)
	}
	return nil
}

func (f *hashFile) checkSize(file *os.File) error {
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("hash %s: not a regular file", f.Source)
	}
	if fi.Size() != f.Size {
		return fmt.Errorf("hash %s: file is %d bytes, listed as %d; did it change during hashing?", f.Source, fi.Size(), f.Size)
	}
	return nil
}

// finishPiece hands piece idx, whose SHA-1 is done, to the SHA-256 chains of
// its files and runs those that are idle and waiting for it.
func (w *worker) finishPiece(idx int, s *slot, inline *hashFile) {
	h := w.h
	if inline != nil {
		// SHA-256 was fed during the read: the piece is done. Move the chain
		// on, and carry on with pieces that queued up for it meanwhile.
		h.putSlot(s)
		h.addDone(h.pieceSize(idx))
		if err := inline.release(); err != nil {
			h.fail(err)
			return
		}
		if next, ok := h.advance(inline, idx); ok {
			w.runChain(inline, next)
		}
		return
	}
	var ov []*hashFile
	for _, f := range h.filesOf(idx) {
		if !f.Pad {
			ov = append(ov, f)
		}
	}
	if len(ov) == 0 {
		// Only pad bytes: no chain needs the piece (AlignFiles never
		// makes such a piece, but a caller's list might).
		h.putSlot(s)
		h.addDone(h.pieceSize(idx))
		return
	}
	var run []*hashFile
	h.chainMu.Lock()
	h.ready[idx] = &pieceBuf{slot: s, refs: len(ov)}
	for _, f := range ov {
		if !f.running && f.next == idx {
			f.running = true
			run = append(run, f)
		}
	}
	h.chainMu.Unlock()
	for _, f := range run {
		w.runChain(f, idx)
	}
}

// runChain feeds piece idx (ready, with the chain owned by this worker) and
// every following piece already ready to f's SHA-256.
func (w *worker) runChain(f *hashFile, idx int) {
	h := w.h
	for h.ctx.Err() == nil {
		h.chainMu.Lock()
		pb := h.ready[idx]
		h.chainMu.Unlock()
		start := int64(idx) * h.pl
		from := max(start, f.start)
		to := min(start+h.pieceSize(idx), f.start+f.Size)
		// The mapping stays until this step's release below, and was set
		// before the piece was read, which happened before it became ready.
		w.cur = f
		if f.m != nil {
			f.sum.Write(f.m[from-f.start : to-f.start])
		} else {
			f.sum.Write(pb.slot.buf[from-start : to-start])
		}
		w.cur = nil

		h.chainMu.Lock()
		pb.refs--
		last := pb.refs == 0
		if last {
			delete(h.ready, idx)
		}
		h.chainMu.Unlock()
		if last {
			h.putSlot(pb.slot)
			h.addDone(h.pieceSize(idx))
		}
		if err := f.release(); err != nil {
			h.fail(err)
			return
		}
		var ok bool
		if idx, ok = h.advance(f, idx); !ok {
			return
		}
	}
}

// advance moves f's chain past piece idx. If the next piece is already
// ready it returns it, and the caller keeps the chain; otherwise it marks
// the chain idle, so that whoever finishes the next piece runs it.
func (h *hasher) advance(f *hashFile, idx int) (int, bool) {
	h.chainMu.Lock()
	defer h.chainMu.Unlock()
	if idx == f.lastPiece {
		f.done = true
		f.running = false
		return 0, false
	}
	f.next = idx + 1
	if _, ok := h.ready[f.next]; ok {
		return f.next, true
	}
	f.running = false
	return 0, false
}

func (h *hasher) addDone(n int64) {
	d := h.done.Add(n)
	if h.progress != nil && d-h.lastReported.Load() >= progressStep {
		h.report()
	}
}

// report calls progress with the bytes done so far; calls are serialised
// and the numbers only grow.
func (h *hasher) report() {
	if h.progress == nil {
		return
	}
	h.progressMu.Lock()
	defer h.progressMu.Unlock()
	d := h.done.Load()
	if d > h.lastReported.Load() {
		h.lastReported.Store(d)
		h.progress(d)
	}
}

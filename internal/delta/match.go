package delta

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sync"
)

// How the matcher works (rsync/zsync style)
//
// The base release is cut into aligned blocks of B bytes per file; each
// block goes into an Index under a weak rolling checksum (rsync's two sums)
// and a strong one (maphash, 64 bits, seeded at random per Index so nobody
// can plan a collision). A Scanner then slides a B-byte window over each new
// file one byte at a time, rolling the weak sum in O(1); a window whose weak
// sum passes a bitset filter is looked up, and a candidate counts only when
// its strong sum agrees too. After a match the window jumps B bytes and
// first tries the base block that follows the matched one, with the strong
// sum alone: unchanged data costs one maphash per block and no rolling.
// Matches that continue each other are merged as they are found, so the
// list grows with the number of changed regions.
//
// A block-granular match misses up to B-1 equal bytes at each edge of a
// changed region; Extend recovers them byte by byte afterwards, reading at
// most maxEdge bytes of new and base data per edge. The result is
// byte-exact: every range's bytes are equal (up to a 2^-64 strong-sum
// collision, which the agent's SHA-1 check of each piece catches anyway).

// Block size bounds for BlockSize.
const (
	MinBlockSize = 4 << 10
	MaxBlockSize = 64 << 10
	// maxBlocks bounds the index: about 24 bytes per block, so 4M blocks
	// are ~100 MiB; beyond that the block size doubles.
	maxBlocks = 4 << 20
	// maxCandidates bounds the blocks kept under one weak sum, so a base
	// full of one repeated block (zeros) cannot make lookups quadratic.
	// Runs of repeated blocks still match through the "next block" path.
	maxCandidates = 8
)

// BlockSize chooses the matcher's block size for a release with the given
// piece length and a base of baseSize bytes: a 256th of a piece, within
// [4 KiB, 64 KiB], doubled while the base would have more than 4M blocks.
//
// Why: ranges are extended byte-exactly at their edges, so the block size
// does not decide how many bytes are missed around an edit; it decides the
// smallest moved or shifted run that is found (one aligned base block, so
// at most 2B-1 bytes), the index memory (~24 bytes per block, under 0.6%
// of the base) and the edge reads (at most 2B bytes of base per changed
// region). 256 blocks per piece keeps a moved run much smaller than the
// piece an agent would otherwise fetch whole.
func BlockSize(pieceLength, baseSize int64) int {
	b := min(max(pieceLength/256, MinBlockSize), MaxBlockSize)
	for baseSize/b > maxBlocks {
		b *= 2
	}
	return int(b)
}

type block struct {
	strong uint64
	off    int64 // offset in the base file
	file   int32 // index into Index.paths
}

// Index holds the block checksums of a base release.
type Index struct {
	bs     int
	seed   maphash.Seed
	paths  []string
	blocks []block // in file order, then offset order: block i+1 follows block i when in the same file
	table  map[uint64][]int32
	filter []uint64 // bitset over filterHash of the weak sums
	shift  uint     // 32 - log2(filter bits)
}

// NewIndex returns an empty index with block size bs (BlockSize in
// production; tests use tiny blocks).
func NewIndex(bs int) *Index {
	if bs < 1 {
		panic("delta: block size must be positive")
	}
	ix := &Index{bs: bs, seed: maphash.MakeSeed(), table: map[uint64][]int32{}}
	ix.resizeFilter(1 << 18)
	return ix
}

// BlockSize returns the index's block size.
func (ix *Index) BlockSize() int { return ix.bs }

// Blocks returns the number of blocks indexed.
func (ix *Index) Blocks() int { return len(ix.blocks) }

func (ix *Index) resizeFilter(bits int) {
	ix.filter = make([]uint64, bits/64)
	ix.shift = uint(32 - log2(bits))
	for k := range ix.table {
		ix.setFilter(k)
	}
}

func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// filterHash mixes the weak sums into a filter index: 32-bit arithmetic,
// since roll computes it for every byte of new data.
func filterHash(a, b uint32, shift uint) uint32 { return ((a<<16 ^ b) * 0x9e3779b1) >> (shift & 31) }

func (ix *Index) setFilter(key uint64) {
	h := filterHash(uint32(key>>32), uint32(key), ix.shift)
	ix.filter[h>>6] |= 1 << (h & 63)
}

// FileBlocks holds the block sums of one base file, computed by HashFile
// and not yet in the index.
type FileBlocks struct {
	path string
	sums []blockSum
}

type blockSum struct {
	key    uint64 // weak sums a<<32 | b
	strong uint64
}

// AddFile indexes the whole aligned blocks of base file path, reading r to
// its end once; a tail shorter than a block is not indexed (Extend and
// whole-file matches by SHA-256 cover tails). It returns the bytes read.
func (ix *Index) AddFile(path string, r io.Reader) (int64, error) {
	fb, n, err := ix.HashFile(path, r)
	if err != nil {
		return n, err
	}
	return n, ix.Add(fb)
}

// HashFile computes the block sums of one base file, reading r to its end.
// It does not change the index, so several files can be hashed at once;
// Add then puts them in, one at a time, in the base's file order.
func (ix *Index) HashFile(path string, r io.Reader) (*FileBlocks, int64, error) {
	fb := &FileBlocks{path: path}
	br := bufio.NewReaderSize(r, max(256<<10, ix.bs))
	buf := make([]byte, ix.bs)
	var off int64
	for {
		n, err := io.ReadFull(br, buf)
		if n == ix.bs {
			a, b := weakSum(buf)
			fb.sums = append(fb.sums, blockSum{key: uint64(a)<<32 | uint64(b), strong: maphash.Bytes(ix.seed, buf)})
		}
		off += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fb, off, nil
		}
		if err != nil {
			return nil, off, fmt.Errorf("index base file %s: %w", path, err)
		}
	}
}

// Add puts a hashed file's blocks into the index.
func (ix *Index) Add(fb *FileBlocks) error {
	if len(ix.paths) >= 1<<31-1 || len(ix.blocks)+len(fb.sums) >= 1<<31-1 {
		return errors.New("delta: too many base files or blocks")
	}
	fi := int32(len(ix.paths))
	ix.paths = append(ix.paths, fb.path)
	for k, s := range fb.sums {
		ix.add(s, fi, int64(k)*int64(ix.bs))
	}
	return nil
}

func (ix *Index) add(s blockSum, file int32, off int64) {
	i := int32(len(ix.blocks))
	ix.blocks = append(ix.blocks, block{strong: s.strong, off: off, file: file})
	if c := ix.table[s.key]; len(c) < maxCandidates {
		ix.table[s.key] = append(c, i)
	}
	// Keep the filter at least 64 bits per distinct weak sum, so that about
	// one unmatched window in 64 reaches the map (a map lookup costs as
	// much as rolling over some 30 bytes).
	if len(ix.table)*64 > len(ix.filter)*64 {
		ix.resizeFilter(len(ix.filter) * 64 * 2)
	} else {
		ix.setFilter(s.key)
	}
}

// weakSum is rsync's checksum of a window: a is the sum of its bytes, b the
// sum of its prefix sums, both modulo 2^32.
func weakSum(p []byte) (a, b uint32) {
	// Eight bytes a step: b gains eight copies of the running a plus the
	// step's bytes weighted 8..1, which keeps the dependency chain short.
	for len(p) >= 8 {
		x0, x1, x2, x3 := uint32(p[0]), uint32(p[1]), uint32(p[2]), uint32(p[3])
		x4, x5, x6, x7 := uint32(p[4]), uint32(p[5]), uint32(p[6]), uint32(p[7])
		b += 8*a + 8*x0 + 7*x1 + 6*x2 + 5*x3 + 4*x4 + 3*x5 + 2*x6 + x7
		a += x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7
		p = p[8:]
	}
	for _, x := range p {
		a += uint32(x)
		b += a
	}
	return a, b
}

// lookup returns the block whose sums equal those of window w, or -1.
func (ix *Index) lookup(key uint64, w []byte) int32 {
	c, ok := ix.table[key]
	if !ok {
		return -1
	}
	s := maphash.Bytes(ix.seed, w)
	for _, i := range c {
		if ix.blocks[i].strong == s {
			return i
		}
	}
	return -1
}

// Scanner finds the blocks of an Index in one new file, fed in order with
// Write. Scanners of different files may run concurrently; the Index must
// not change while they do.
type Scanner struct {
	ix      *Index
	fileOff int64  // offset of the file in the release payload
	size    int64  // the file's size
	buf     []byte // unprocessed bytes; buf[pos:] starts the window
	pos     int
	bufOff  int64 // file offset of buf[0]
	rolling bool  // a, b hold the sums of buf[pos:pos+bs]
	a, b    uint32
	next    int32 // block to try first at pos (the one after the last match), or -1
	ranges  []Range
}

// Scan starts a scan of a new file of size bytes that begins at offset
// fileOff of the release payload (torrent order).
func (ix *Index) Scan(fileOff, size int64) *Scanner {
	return &Scanner{ix: ix, fileOff: fileOff, size: size, next: -1}
}

// Write feeds the next bytes of the file. It never fails; bytes past the
// file's size are ignored.
func (s *Scanner) Write(p []byte) (int, error) {
	n := len(p)
	if rest := s.size - s.bufOff - int64(len(s.buf)); int64(len(p)) > rest {
		p = p[:max(rest, 0)]
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.pos > 0 {
		k := copy(s.buf, s.buf[s.pos:])
		s.buf = s.buf[:k]
		s.bufOff += int64(s.pos)
		s.pos = 0
	}
	s.buf = append(s.buf, p...)
	s.scan()
	if s.bufOff+int64(len(s.buf)) == s.size {
		// The last bytes are in: what is left is shorter than a block
		// and can match nothing. Free the buffer, since a release may
		// have many files and their scanners live until publish ends.
		s.bufOff += int64(len(s.buf))
		s.buf, s.pos = nil, 0
	}
	return n, nil
}

// Ranges returns the matches found so far, in payload offsets, sorted and
// merged. Call it after the last Write; a tail shorter than a block is
// never matched here (Extend covers it).
func (s *Scanner) Ranges() []Range { return s.ranges }

func (s *Scanner) scan() {
	ix, bs := s.ix, s.ix.bs
	buf := s.buf
	n := len(buf)
	pos := s.pos
	a, b := s.a, s.b
	mul := uint32(bs)
	filter, shift := ix.filter, ix.shift
	for pos+bs <= n {
		if s.next >= 0 {
			if maphash.Bytes(ix.seed, buf[pos:pos+bs]) == ix.blocks[s.next].strong {
				s.add(pos, s.next)
				pos += bs
				continue
			}
			s.next = -1
		}
		if !s.rolling {
			a, b = weakSum(buf[pos : pos+bs])
			s.rolling = true
		}
		for {
			h := filterHash(a, b, shift)
			if filter[h>>6]&(1<<(h&63)) != 0 {
				if i := ix.lookup(uint64(a)<<32|uint64(b), buf[pos:pos+bs]); i >= 0 {
					s.add(pos, i)
					pos += bs
					break
				}
			}
			if pos+bs >= n {
				// Need one more byte to roll; keep the sums for the next Write.
				s.pos, s.a, s.b = pos, a, b
				return
			}
			// Roll to the next window whose sums pass the filter.
			var k int
			k, a, b = roll(buf[pos:n-bs], buf[pos+bs:n], a, b, mul, filter, shift)
			pos += k
		}
	}
	s.pos, s.a, s.b = pos, a, b
}

// roll slides the window one byte at a time, outs[i] leaving and ins[i]
// entering, and stops after the first step whose sums pass the filter (or
// after the last byte). It returns the steps taken and the sums.
func roll(outs, ins []byte, a, b, mul uint32, filter []uint64, shift uint) (int, uint32, uint32) {
	ins = ins[:len(outs)]
	shift &= 31
	i := 0
	// Two steps a turn: fewer loop branches and register moves.
	for ; i+1 < len(outs); i += 2 {
		o0, o1 := uint32(outs[i]), uint32(outs[i+1])
		a0 := a + uint32(ins[i]) - o0
		b0 := b + a0 - mul*o0
		h0 := ((a0<<16 ^ b0) * 0x9e3779b1) >> shift
		a = a0 + uint32(ins[i+1]) - o1
		b = b0 + a - mul*o1
		if filter[h0>>6]&(1<<(h0&63)) != 0 {
			return i + 1, a0, b0
		}
		h1 := ((a<<16 ^ b) * 0x9e3779b1) >> shift
		if filter[h1>>6]&(1<<(h1&63)) != 0 {
			return i + 2, a, b
		}
	}
	for ; i < len(outs); i++ {
		out := uint32(outs[i])
		a += uint32(ins[i]) - out
		b += a - mul*out
		if h := filterHash(a, b, shift); filter[h>>6]&(1<<(h&63)) != 0 {
			return i + 1, a, b
		}
	}
	return len(outs), a, b
}

// add records that the window at pos matched block i.
func (s *Scanner) add(pos int, i int32) {
	ix := s.ix
	blk := ix.blocks[i]
	off := s.fileOff + s.bufOff + int64(pos)
	path := ix.paths[blk.file]
	bs := int64(ix.bs)
	if k := len(s.ranges) - 1; k >= 0 {
		r := &s.ranges[k]
		if r.Off+r.Len == off && r.BaseOff+r.Len == blk.off && r.BasePath == path {
			r.Len += bs
			s.setNext(i)
			return
		}
	}
	s.ranges = append(s.ranges, Range{Off: off, Len: bs, BasePath: path, BaseOff: blk.off})
	s.setNext(i)
}

func (s *Scanner) setNext(i int32) {
	s.rolling = false
	s.next = -1
	if j := i + 1; int(j) < len(s.ix.blocks) && s.ix.blocks[j].file == s.ix.blocks[i].file {
		s.next = j
	}
}

// Merge sorts ranges by offset and joins neighbours that continue each other
// in both the new payload and the same base file. The ranges must not
// overlap.
func Merge(rs []Range) []Range {
	slices.SortFunc(rs, func(x, y Range) int {
		switch {
		case x.Off < y.Off:
			return -1
		case x.Off > y.Off:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if k := len(out) - 1; k >= 0 {
			p := &out[k]
			if p.Off+p.Len == r.Off && p.BaseOff+p.Len == r.BaseOff && p.BasePath == r.BasePath {
				p.Len += r.Len
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// BaseReader reads the bytes of one base file; a read past its end returns
// fewer bytes (io.ReaderAt semantics).
type BaseReader func(path string) (io.ReaderAt, error)

// Extend grows each range, byte by byte, into the unmatched bytes on both
// sides of it for as long as new and base bytes agree, reading at most
// maxEdge bytes of each per edge, and merges ranges that then meet. rs must
// be sorted and disjoint (Merge), newData reads the release payload in
// torrent order and total is its size. The edges are read by up to
// extendReaders goroutines at once (a base in S3 costs one request per
// edge), so newData and the base's readers must allow concurrent ReadAt.
func Extend(rs []Range, total int64, newData io.ReaderAt, base BaseReader, maxEdge int) ([]Range, error) {
	if maxEdge <= 0 || len(rs) == 0 {
		return rs, nil
	}
	var mu sync.Mutex
	readers := map[string]io.ReaderAt{}
	baseAt := func(p string) (io.ReaderAt, error) {
		mu.Lock()
		defer mu.Unlock()
		if r, ok := readers[p]; ok {
			return r, nil
		}
		r, err := base(p)
		if err != nil {
			return nil, err
		}
		readers[p] = r
		return r, nil
	}
	var prevEnd int64
	for lo := 0; lo < len(rs); lo += extendBatch {
		batch := rs[lo:min(lo+extendBatch, len(rs))]
		// Read every edge of the batch against the gaps as they were
		// before extending: a gap only shrinks, so the bytes needed later
		// are a suffix of what is read here.
		edges := make([]edgeBytes, len(batch))
		origPrevEnd := int64(0)
		if lo > 0 {
			origPrevEnd = rs[lo-1].Off + rs[lo-1].Len // already extended: a tighter bound, still safe
		}
		var wg sync.WaitGroup
		var firstErr error
		sem := make(chan struct{}, extendReaders)
		for j := range batch {
			r := batch[j]
			next := total
			if lo+j+1 < len(rs) {
				next = rs[lo+j+1].Off
			}
			before := origPrevEnd
			if j > 0 {
				before = batch[j-1].Off + batch[j-1].Len
			}
			e := &edges[j]
			e.backK = min(r.Off-before, int64(maxEdge), r.BaseOff)
			e.fwdK = min(next-(r.Off+r.Len), int64(maxEdge))
			if e.backK <= 0 && e.fwdK <= 0 {
				continue
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := e.read(r, newData, baseAt); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		for j := range batch {
			r := &batch[j]
			e := &edges[j]
			// Backward, into what the previous range left of the gap.
			if k := min(e.backK, r.Off-prevEnd); k > 0 && len(e.backNew) == int(e.backK) && len(e.backBase) == int(e.backK) {
				c := int64(commonSuffix(e.backNew[e.backK-k:], e.backBase[e.backK-k:]))
				r.Off -= c
				r.BaseOff -= c
				r.Len += c
			}
			// Forward, into the gap before the next range.
			if n := min(len(e.fwdNew), len(e.fwdBase)); n > 0 {
				r.Len += int64(commonPrefix(e.fwdNew[:n], e.fwdBase[:n]))
			}
			prevEnd = r.Off + r.Len
		}
	}
	return Merge(rs), nil
}

// Edge reads: how many ranges' edges are held at once, and read in parallel.
const (
	extendBatch   = 64
	extendReaders = 16
)

// edgeBytes holds the bytes on both sides of one range, new and base.
type edgeBytes struct {
	backK, fwdK       int64
	backNew, backBase []byte
	fwdNew, fwdBase   []byte
}

func (e *edgeBytes) read(r Range, newData io.ReaderAt, baseAt func(string) (io.ReaderAt, error)) error {
	br, err := baseAt(r.BasePath)
	if err != nil {
		return err
	}
	get := func(ra io.ReaderAt, off, k int64) ([]byte, error) {
		b := make([]byte, k)
		n, err := readFull(ra, b, off)
		return b[:n], err
	}
	if e.backK > 0 {
		if e.backNew, err = get(newData, r.Off-e.backK, e.backK); err != nil {
			return err
		}
		if e.backBase, err = get(br, r.BaseOff-e.backK, e.backK); err != nil {
			return err
		}
	}
	if e.fwdK > 0 {
		if e.fwdNew, err = get(newData, r.Off+r.Len, e.fwdK); err != nil {
			return err
		}
		if e.fwdBase, err = get(br, r.BaseOff+r.Len, e.fwdK); err != nil {
			return err
		}
	}
	return nil
}

// readFull reads len(p) bytes at off, or fewer at the end of the data.
func readFull(r io.ReaderAt, p []byte, off int64) (int, error) {
	n, err := r.ReadAt(p, off)
	if err == io.EOF || (err == nil && n == len(p)) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("delta: read %d bytes at %d: %w", len(p), off, err)
	}
	return n, nil
}

func commonPrefix(x, y []byte) int {
	n := min(len(x), len(y))
	i := 0
	for i+8 <= n && string(x[i:i+8]) == string(y[i:i+8]) {
		i += 8
	}
	for i < n && x[i] == y[i] {
		i++
	}
	return i
}

func commonSuffix(x, y []byte) int {
	i, j := len(x), len(y)
	for i > 0 && j > 0 && x[i-1] == y[j-1] {
		i--
		j--
	}
	return len(x) - i
}

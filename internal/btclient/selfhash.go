package btclient

import (
	"bytes"
	"crypto/sha1"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// Self-hashing: the file storage hashes each piece's SHA-1 as its blocks
// are written, so that the library's piece check does not read the piece
// back from disk (storage.SelfHashing). Blocks arrive out of order: the
// hash runs over the in-order prefix, and blocks ahead of it wait in
// memory, under a HashBuffer. A piece falls back to reading back from disk
// when its blocks did not add up to exactly one write of every byte (a
// block written twice or overlapping, a failed write, the buffer full,
// data already on disk from an earlier run). A piece whose self-hash was
// wrong is read back at its next check, so that the library's smart ban
// (which compares the blocks each peer sent with the piece read back)
// still finds the peer that sent a bad block.
//
// What the self-hash proves is that the bytes written were right; the
// agent still checks every file's SHA-256 on disk before activating it.

// DefaultHashBuffer bounds the out-of-order blocks held for self-hashing
// by the storages that have no HashBuffer of their own (one shared buffer
// in the process: a process runs one client).
const DefaultHashBuffer = 32 << 20

var defaultHashBuffer = NewHashBuffer(DefaultHashBuffer)

// HashBuffer bounds the memory that self-hashing pieces hold for blocks
// that arrived ahead of the hashed prefix. Give all the storages of one
// client the same buffer (WithHashBuffer).
type HashBuffer struct {
	max  int64
	used atomic.Int64
}

// NewHashBuffer returns a buffer of max bytes.
func NewHashBuffer(max int64) *HashBuffer { return &HashBuffer{max: max} }

// InUse is how many bytes of blocks are held now.
func (b *HashBuffer) InUse() int64 { return b.used.Load() }

func (b *HashBuffer) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *HashBuffer) give(n int64) { b.used.Add(-n) }

// WithHashBuffer makes the storage hold out-of-order blocks in b (default:
// one buffer of DefaultHashBuffer bytes for the process).
func WithHashBuffer(b *HashBuffer) FileStorageOption {
	return func(c *fileClient) { c.hashBuf = b }
}

// WithReadBackHashing turns self-hashing off: the library hashes every
// piece by reading it back from disk.
func WithReadBackHashing() FileStorageOption {
	return func(c *fileClient) { c.readBack = true }
}

// pieceHashes is the self-hashing state of one torrent's pieces.
type pieceHashes struct {
	buf *HashBuffer

	mu       sync.Mutex
	running  map[int]*runningHash
	readBack map[int]bool // pieces whose self-hash was wrong: read back next time

	stats *hashStats
}

// hashStats counts the pieces a storage hashed either way (tests, figures).
type hashStats struct{ selfHashed, readBacks atomic.Int64 }

func newPieceHashes(buf *HashBuffer, stats *hashStats) *pieceHashes {
	return &pieceHashes{buf: buf, stats: stats, running: make(map[int]*runningHash), readBack: make(map[int]bool)}
}

// runningHash is one piece's hash over its written prefix.
type runningHash struct {
	mu     sync.Mutex
	h      hash.Hash
	next   int64            // bytes hashed: the prefix [0, next) was written once each
	ahead  map[int64][]byte // blocks written past next, by offset
	held   int64            // their bytes, taken from the buffer
	broken bool             // the piece must be read back
}

// wrote feeds a block written at off into piece index's hash; ok is false
// when the write failed (the piece is then read back).
func (hs *pieceHashes) wrote(index int, off int64, b []byte, ok bool) {
	hs.mu.Lock()
	if hs.readBack[index] {
		hs.mu.Unlock()
		return
	}
	r := hs.running[index]
	if r == nil {
		r = &runningHash{h: sha1.New()}
		hs.running[index] = r
	}
	hs.mu.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		return
	}
	end := off + int64(len(b))
	if !ok || off < r.next {
		r.breakOff(hs.buf) // failed, or written twice
		return
	}
	if _, dup := r.ahead[off]; dup {
		r.breakOff(hs.buf) // written twice
		return
	}
	// Other overlaps need no search: the hash only ever takes the block
	// starting where it ends, so an overlapping block is either refused
	// above or left waiting, and a piece with blocks left waiting is read
	// back (take).
	if off > r.next {
		if !hs.buf.take(int64(len(b))) {
			r.breakOff(hs.buf)
			return
		}
		if r.ahead == nil {
			r.ahead = make(map[int64][]byte)
		}
		r.ahead[off] = holdBlock(b)
		r.held += int64(len(b))
		return
	}
	r.h.Write(b)
	r.next = end
	for {
		blk, ok := r.ahead[r.next]
		if !ok {
			return
		}
		r.h.Write(blk)
		delete(r.ahead, r.next)
		r.held -= int64(len(blk))
		hs.buf.give(int64(len(blk)))
		r.next += int64(len(blk))
		dropBlock(blk)
	}
}

// Held blocks are almost all MaxRequestLength long (every client asks for
// 16 KiB), and most blocks are held: an anacrolix seeder sends the blocks
// asked for in map order, so they arrive shuffled. Recycling them keeps
// that from costing an allocation and garbage per block.
var blockPool = sync.Pool{New: func() any { return new([MaxRequestLength]byte) }}

func holdBlock(b []byte) []byte {
	if len(b) != MaxRequestLength {
		return bytes.Clone(b)
	}
	p := blockPool.Get().(*[MaxRequestLength]byte)
	copy(p[:], b)
	return p[:]
}

func dropBlock(b []byte) {
	if len(b) == MaxRequestLength {
		blockPool.Put((*[MaxRequestLength]byte)(b))
	}
}

// breakOff gives up on the running hash: the piece is read back. r.mu is
// held.
func (r *runningHash) breakOff(buf *HashBuffer) {
	r.broken = true
	r.h = nil
	for _, blk := range r.ahead {
		dropBlock(blk)
	}
	r.ahead = nil
	buf.give(r.held)
	r.held = 0
}

// take removes piece index's running hash and returns its sum if it
// covers exactly length bytes.
func (hs *pieceHashes) take(index int, length int64) (sum metainfo.Hash, ok bool) {
	hs.mu.Lock()
	r := hs.running[index]
	delete(hs.running, index)
	hs.mu.Unlock()
	if r == nil {
		return sum, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.broken && r.next == length && len(r.ahead) == 0 {
		copy(sum[:], r.h.Sum(nil))
		ok = true
	}
	r.breakOff(hs.buf)
	return sum, ok
}

// forget drops piece index's running hash. readBack marks the piece for
// reading back until it passes (until forget with readBack false after
// MarkComplete); a piece once marked stays marked through failures.
func (hs *pieceHashes) forget(index int, readBack bool) {
	hs.take(index, -1)
	hs.mu.Lock()
	if readBack {
		hs.readBack[index] = true
	} else {
		delete(hs.readBack, index)
	}
	hs.mu.Unlock()
}

// dropRunning drops piece index's running hash and leaves its mark.
func (hs *pieceHashes) dropRunning(index int) { hs.take(index, -1) }

func (hs *pieceHashes) readingBack(index int) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.readBack[index]
}

// close gives back every block held.
func (hs *pieceHashes) close() {
	hs.mu.Lock()
	running := hs.running
	hs.running = make(map[int]*runningHash)
	hs.mu.Unlock()
	for _, r := range running {
		r.mu.Lock()
		r.breakOff(hs.buf)
		r.mu.Unlock()
	}
}

// selfHashPiece is a filePiece that hashes itself.
type selfHashPiece struct {
	*filePiece
	want     metainfo.Hash // the piece's SHA-1 from the info
	haveWant bool
}

var _ storage.SelfHashing = (*selfHashPiece)(nil)

// SelfHash returns the running hash of the piece's written blocks, or the
// hash of the piece read back from disk when there is none.
func (p *selfHashPiece) SelfHash() (metainfo.Hash, error) {
	hs := p.t.hashes
	if sum, ok := hs.take(p.index, p.length); ok {
		hs.stats.selfHashed.Add(1)
		if p.haveWant && sum != p.want {
			// The library fails the piece; its retry is read back so that
			// smart ban can compare what each peer sent.
			hs.forget(p.index, true)
		}
		return sum, nil
	}
	hs.stats.readBacks.Add(1)
	h := sha1.New()
	var sum metainfo.Hash
	_, err := p.WriteTo(h)
	copy(sum[:], h.Sum(nil))
	return sum, err
}

package agent

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
)

// Sub-piece fetching (issue 17). A piece partly held locally (a small
// edit inside a large file) is completed, when the offloader fetches it
// from the origin, by reading the held runs from local files and asking
// the origin only for the rest (HTTP Range); the library then checks the
// whole piece against its SHA-1 as for any origin piece. Pieces that
// peers have still come from peers whole: the shard rules of offload.go
// are unchanged, so agents of a swarm fetch each gap from the origin about
// once.
//
// Measured (TestDeltaSubPieceVersusWholePiece, one agent, 1 MiB pieces,
// small edits): see docs/benchmarks.md; sub-piece fetching moved the
// changed bytes where whole pieces moved a piece per edit.

// subPieces holds the held runs of the pieces partly held locally.
type subPieces struct {
	mu     sync.Mutex
	pieces map[int][]localSeg
	// reused counts the held bytes of pieces completed this way.
	reused *atomic.Int64
}

// subPieceOff turns sub-piece fetching off (tests measure the
// difference).
var subPieceOff atomic.Bool

func newSubPieces(p map[int][]localSeg, reused *atomic.Int64) *subPieces {
	if len(p) == 0 {
		return nil
	}
	return &subPieces{pieces: p, reused: reused}
}

func (s *subPieces) get(p int) []localSeg {
	if s == nil || subPieceOff.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pieces[p]
}

// forget drops piece p's held runs (they failed the hash, or the piece is
// done): the piece is fetched whole from then on.
func (s *subPieces) forget(p int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	delete(s.pieces, p)
	s.mu.Unlock()
}

// fillPiece fills buf with piece p (at torrent offset begin): the held
// runs from local files, the rest from the origin. It reports whether
// local bytes were used.
func (o *offloader) fillPiece(ctx context.Context, p int, begin int64, buf []byte) (local bool, err error) {
	segs := o.sub.get(p)
	if len(segs) == 0 {
		return false, o.readRange(ctx, begin, buf)
	}
	pos := begin
	end := begin + int64(len(buf))
	for _, s := range append(segs, localSeg{off: end}) {
		if s.off > pos {
			if err := o.readRange(ctx, pos, buf[pos-begin:s.off-begin]); err != nil {
				return false, err
			}
		}
		if s.n == 0 {
			break
		}
		if err := readHeld(s, buf[s.off-begin:s.off-begin+s.n]); err != nil {
			// A held file went away: fetch this run too.
			if err := o.readRange(ctx, s.off, buf[s.off-begin:s.off-begin+s.n]); err != nil {
				return false, err
			}
		} else {
			local = true
		}
		pos = s.off + s.n
	}
	return local, nil
}

// readHeld reads one held run. Runs of cloned files (in place) are read
// from the new release's file, which the caller rewrites whole anyway.
func readHeld(s localSeg, b []byte) error {
	f, err := os.Open(s.src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(b, s.srcOff)
	return err
}

// held is how many bytes of piece p local files supply.
func (s *subPieces) held(p int) int64 {
	var n int64
	for _, seg := range s.get(p) {
		n += seg.n
	}
	return n
}

// done counts piece p's held runs as reused and drops them.
func (s *subPieces) done(p int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.pieces[p] {
		s.reused.Add(seg.n)
	}
	delete(s.pieces, p)
}

// SetSubPieceFetch turns sub-piece fetching on (the default) or off for
// the whole process; benchmarks and tests compare the two.
func SetSubPieceFetch(on bool) { subPieceOff.Store(!on) }

package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
)

// Origin offload.
//
// The origin should send each byte about once per swarm, not once per
// agent. The torrent library cannot prefer one peer over another, and its
// own web seed competes as an equal source, so agents never use either for
// the origin. Instead each agent fetches from the origin (HTTP range
// requests on the catalog's payload) only the pieces it owns, and takes
// everything else from peers.
//
// Ownership is rendezvous hashing over the swarm's live members: the agent
// itself and every connected swarmship agent that is making progress. Each
// agent computes the same owner for a piece from the same member set, so
// the shards are disjoint; when a member leaves or stalls, only its pieces
// move, to their next-ranked member. An agent alone owns every piece, which
// is the fallback when no peer is reachable.

// pieceScore is the rendezvous weight of a member for one piece.
func pieceScore(infoHash [20]byte, member [20]byte, piece int) uint64 {
	h := fnv.New64a()
	h.Write(infoHash[:])
	h.Write(member[:])
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(piece))
	h.Write(b[:])
	// FNV mixes its last bytes poorly; finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// ownsPiece reports whether self has the highest score among members.
func ownsPiece(infoHash, self [20]byte, members [][20]byte, piece int) bool {
	mine := pieceScore(infoHash, self, piece)
	for _, m := range members {
		if m == self {
			continue
		}
		s := pieceScore(infoHash, m, piece)
		if s > mine || (s == mine && string(m[:]) > string(self[:])) {
			return false
		}
	}
	return true
}

// rangeSource reads payload bytes from where the catalog keeps them.
type rangeSource interface {
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// offloader fetches a download's owned pieces from the origin.
type offloader struct {
	t        *torrent.Torrent
	m        *catalog.Manifest
	src      rangeSource
	limiter  *rate.Limiter
	cfg      OffloadConfig
	self     [20]byte
	log      *slog.Logger
	fileEnds []int64 // cumulative end offset of each file

	originBytes atomic.Int64
	failures    atomic.Int64
	paused      atomic.Bool            // outside a download window, or by policy
	lastErr     atomic.Pointer[string] // last origin fetch error, for status

	mu       sync.Mutex
	progress map[[20]byte]peerProgress
}

type peerProgress struct {
	pieces   uint64
	lastGrew time.Time
}

func newOffloader(t *torrent.Torrent, m *catalog.Manifest, src rangeSource, limiter *rate.Limiter, cfg OffloadConfig, self [20]byte, log *slog.Logger) *offloader {
	o := &offloader{t: t, m: m, src: src, limiter: limiter, cfg: cfg, self: self, log: log, progress: map[[20]byte]peerProgress{}}
	var end int64
	for _, f := range m.Files {
		end += f.Size
		o.fileEnds = append(o.fileEnds, end)
	}
	return o
}

// run fetches owned pieces until the torrent completes or ctx ends.
func (o *offloader) run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-o.t.Complete().On():
		return nil
	case <-time.After(o.cfg.StartupGrace):
	}
	n := o.t.NumPieces()
	inflight := make(map[int]bool)
	done := make(chan int, o.cfg.Parallel)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if o.t.Complete().Bool() {
			return nil
		}
		if len(inflight) < o.cfg.Parallel {
			for _, p := range o.candidates(n, inflight, o.cfg.Parallel-len(inflight)) {
				inflight[p] = true
				wg.Add(1)
				go func(p int) {
					defer wg.Done()
					if err := o.fetchPiece(ctx, p); err != nil && ctx.Err() == nil {
						o.failures.Add(1)
						msg := err.Error()
						o.lastErr.Store(&msg)
						o.log.Warn("origin fetch failed", "piece", p, "err", err)
						// Back off so a broken origin is not hammered.
						select {
						case <-ctx.Done():
						case <-time.After(time.Second):
						}
					}
					done <- p
				}(p)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.t.Complete().On():
			return nil
		case p := <-done:
			delete(inflight, p)
		case <-tick.C:
		}
	}
}

// candidates picks up to max missing pieces this agent should fetch from
// the origin now: pieces that no connected peer has and that this agent
// owns among the live members.
func (o *offloader) candidates(n int, inflight map[int]bool, max int) []int {
	if max <= 0 || o.paused.Load() {
		return nil
	}
	members, avail := o.swarmView()
	ih := o.t.InfoHash()
	var out []int
	for p := 0; p < n && len(out) < max; p++ {
		if inflight[p] || avail.Contains(uint32(p)) {
			continue
		}
		if o.t.PieceState(p).Complete {
			continue
		}
		if ownsPiece(ih, o.self, members, p) {
			out = append(out, p)
		}
	}
	return out
}

// swarmView returns the live members (self first) and the union of the
// pieces connected peers have.
func (o *offloader) swarmView() ([][20]byte, *roaring.Bitmap) {
	now := time.Now()
	avail := roaring.New()
	members := [][20]byte{o.self}
	n := uint64(o.t.NumPieces())
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[[20]byte]bool{}
	for _, pc := range o.t.PeerConns() {
		pieces := pc.PeerPieces()
		avail.Or(pieces)
		id := [20]byte(pc.PeerID)
		if !strings.HasPrefix(string(id[:]), btclient.AgentPeerIDPrefix) || seen[id] {
			continue
		}
		seen[id] = true
		count := pieces.GetCardinality()
		pp, ok := o.progress[id]
		if !ok || count > pp.pieces {
			pp = peerProgress{pieces: count, lastGrew: now}
			o.progress[id] = pp
		}
		// A complete peer fetches nothing, and a stalled one should not
		// hold pieces that others wait for.
		if count >= n || now.Sub(pp.lastGrew) > o.cfg.OrphanTimeout {
			continue
		}
		members = append(members, id)
	}
	for id := range o.progress {
		if !seen[id] {
			delete(o.progress, id)
		}
	}
	sort.Slice(members[1:], func(i, j int) bool { return string(members[1+i][:]) < string(members[1+j][:]) })
	return members, avail
}

// fetchPiece reads piece p from the origin, writes it into the torrent's
// storage and has the library verify it against the piece hash.
func (o *offloader) fetchPiece(ctx context.Context, p int) error {
	pl := o.m.PieceLength
	begin := int64(p) * pl
	end := min(begin+pl, o.m.TotalSize)
	buf := make([]byte, end-begin)
	if err := o.readRange(ctx, begin, buf); err != nil {
		return err
	}
	if o.t.PieceState(p).Complete {
		return nil // a peer delivered it meanwhile
	}
	piece := o.t.Piece(p)
	if _, err := piece.Storage().WriteAt(buf, 0); err != nil {
		return fmt.Errorf("write piece %d: %w", p, err)
	}
	if err := piece.VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("verify piece %d: %w", p, err)
	}
	// A peer may have delivered chunks of the same piece meanwhile, which
	// queues another check: judge the piece once the library settles.
	for range 100 {
		st := o.t.PieceState(p)
		if st.Complete {
			return nil
		}
		if !st.Hashing && !st.QueuedForHash && !st.Marking {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !o.t.PieceState(p).Complete {
		return fmt.Errorf("piece %d from the origin failed its hash check", p)
	}
	return nil
}

// readRange fills buf with the release bytes at torrent offset off, which
// may span several files.
func (o *offloader) readRange(ctx context.Context, off int64, buf []byte) error {
	prefix := catalog.DataPrefix(o.m.Name, o.m.Version)
	filled := 0
	for i, f := range o.m.Files {
		if filled == len(buf) {
			break
		}
		fileBegin := o.fileEnds[i] - f.Size
		pos := off + int64(filled)
		if pos >= o.fileEnds[i] || f.Size == 0 {
			continue
		}
		inFile := pos - fileBegin
		n := min(int64(len(buf)-filled), f.Size-inFile)
		if err := o.readFile(ctx, prefix+f.Path, inFile, buf[filled:filled+int(n)]); err != nil {
			return err
		}
		filled += int(n)
	}
	if filled != len(buf) {
		return errors.New("piece range lies outside the release's files")
	}
	return nil
}

func (o *offloader) readFile(ctx context.Context, key string, off int64, dst []byte) error {
	rc, err := o.src.GetRange(ctx, key, off, int64(len(dst)))
	if err != nil {
		return err
	}
	defer rc.Close()
	const chunk = 64 << 10
	for got := 0; got < len(dst); {
		n := min(chunk, len(dst)-got)
		if o.limiter != nil {
			if err := o.limiter.WaitN(ctx, min(n, o.limiter.Burst())); err != nil {
				return err
			}
		}
		m, err := io.ReadFull(rc, dst[got:got+n])
		got += m
		o.originBytes.Add(int64(m))
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", key, off+int64(got), err)
		}
	}
	return nil
}

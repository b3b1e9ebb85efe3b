package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmship/swarmship/internal/streamverify"
)

// verifyWindow is how far past the first missing piece swarm.order
// "verify" asks for pieces first (at least 4 pieces): enough to keep the
// streaming hash's frontier moving, small enough that agents starting
// together do not all want the same pieces for long (everything past it
// stays rarest first, which is what makes a swarm trade). With 5 agents
// and 80 MiB in the e2e harness, 8 MiB halved what was left to hash at
// completion; 32 MiB looked slower to complete (noisy machine).
const verifyWindow = 8 << 20

// verifyWorkers bounds the agent's streaming hashes, all downloads
// together: each is ~2 GB/s of SHA-256 on one core, faster than a
// download, and the rest of the machine is the download itself.
const verifyWorkers = 2

// streamVerify hashes a download's files while its pieces arrive
// (internal/streamverify), so that at completion only what is left is
// hashed. It lives until the release is verified or the download stops.
type streamVerify struct {
	v      *streamverify.Verifier
	cancel context.CancelFunc
	done   chan struct{}
}

// startStreamVerify starts the streaming hash of d (nil when the manifest
// cannot be laid out: the completion path then hashes everything).
func (a *Agent) startStreamVerify(d *download) *streamVerify {
	m := d.manifest
	if m.Media != nil {
		// Pad files leave gaps between the files, which the streaming
		// verifier does not model: hash at completion instead.
		return nil
	}
	dir := a.cache.releaseDir(m.Name, m.Version)
	files := make([]streamverify.File, len(m.Files))
	var off int64
	for i, f := range m.Files {
		want, err := hex.DecodeString(f.SHA256)
		if err != nil {
			want = nil // a manifest is validated; compute only
		}
		files[i] = streamverify.File{Offset: off, Length: f.Size, Want: want}
		off += f.Size
	}
	v, err := streamverify.New(streamverify.Config{
		PieceLength: m.PieceLength,
		Files:       files,
		Open: func(i int) (streamverify.Handle, error) {
			f, err := os.Open(filepath.Join(dir, filepath.FromSlash(m.Files[i].Path)))
			if err != nil {
				return nil, err
			}
			return writebackFile{f}, nil
		},
		Workers: verifyWorkers,
		Gate:    a.verifyGate,
	})
	if err != nil || v.NumPieces() != d.t.NumPieces() {
		a.log.Warn("no streaming verification; files are hashed at completion", "release", m.Name, "version", m.Version, "err", err)
		return nil
	}
	ctx, cancel := context.WithCancel(d.ctx)
	sv := &streamVerify{v: v, cancel: cancel, done: make(chan struct{})}
	// Subscribe before reading the current state, so no change is missed
	// between the two.
	sub := d.t.SubscribePieceStateChanges()
	v.Start(ctx)
	var i int
	for _, run := range d.t.PieceStateRuns() {
		for range run.Length {
			v.SetPiece(i, run.Complete)
			i++
		}
	}
	var order *pieceOrder
	if a.cfg.Swarm.Order == "verify" {
		order = &pieceOrder{t: d.t, window: max(4, int((verifyWindow+m.PieceLength-1)/m.PieceLength))}
		order.advance(v.Frontier())
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(sv.done)
		defer v.Close()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ch, ok := <-sub.Values:
				if !ok {
					return
				}
				v.SetPiece(ch.Index, ch.Complete)
				if order != nil && ch.Complete {
					order.advance(v.Frontier())
				}
			}
		}
	}()
	return sv
}

// stop ends the streaming hash and waits for it.
func (s *streamVerify) stop() {
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// pieceOrder raises the pieces just past the streaming hash's frontier to
// high priority, so they are asked for first; within them, and for
// everything else, the library's order (rarest first) stands.
type pieceOrder struct {
	t      *torrent.Torrent
	window int
	mu     sync.Mutex
	raised int // pieces below this have been raised
}

func (o *pieceOrder) advance(frontier int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := min(o.t.NumPieces(), frontier+o.window)
	for ; o.raised < end; o.raised++ {
		if o.raised >= frontier {
			o.t.Piece(o.raised).SetPriority(torrent.PiecePriorityHigh)
		}
	}
}

// verifyComplete checks every file of a complete download against its
// signed SHA-256: the files the streaming hash verified (and synced) are
// taken as they are, the others are hashed now. A streamed mismatch is
// hashed again from disk before it fails the release, so that a piece
// lost and fetched again while it was read cannot fail it.
func (a *Agent) verifyComplete(ctx context.Context, d *download) error {
	dir := a.cache.releaseDir(d.ref.Name, d.ref.Version)
	sv := d.sv
	start := time.Now()
	if v := d.variants; v != nil {
		// The other variant's files are not here: skip them.
		return verifyFilesSkipping(ctx, dir, d.manifest, func(i int) bool { return v.skip[i] })
	}
	if sv == nil {
		return verifyFiles(ctx, dir, d.manifest)
	}
	left := sv.v.Remaining()
	sv.v.SetAll() // the torrent is complete; events may lag behind
	defer func() {
		a.log.Info("release hashed", "release", d.ref.Name, "version", d.ref.Version,
			"bytes", d.manifest.TotalSize, "left_at_completion", left, "took", time.Since(start).Round(time.Millisecond))
	}()
	if err := sv.v.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return verifyFiles(ctx, dir, d.manifest)
	}
	verified := func(i int) bool {
		r := sv.v.Result(i)
		if !r.Verified {
			if r.Err != nil && !errors.Is(r.Err, streamverify.ErrMismatch) {
				a.log.Warn("streaming verification failed; hashing the file again", "release", d.ref.Name, "version", d.ref.Version, "file", d.manifest.Files[i].Path, "err", r.Err)
			}
		}
		return r.Verified
	}
	return verifyFilesSkipping(ctx, dir, d.manifest, verified)
}

// writebackFile is a file the streaming hash reads, syncs and starts the
// writeback of.
type writebackFile struct{ *os.File }

func (f writebackFile) StartWriteback(off, n int64) error { return startWriteback(f.Fd(), off, n) }

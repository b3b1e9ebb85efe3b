package streamverify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// store is an in-memory torrent: its files' bytes, and how many bytes
// were read back.
type store struct {
	mu    sync.Mutex
	data  [][]byte
	read  atomic.Int64
	opens atomic.Int64
}

type memHandle struct {
	s *store
	i int
}

func (h memHandle) ReadAt(p []byte, off int64) (int, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	n, err := bytes.NewReader(h.s.data[h.i]).ReadAt(p, off)
	h.s.read.Add(int64(n))
	return n, err
}

func (memHandle) Close() error { return nil }

func (s *store) open(i int) (Handle, error) {
	s.opens.Add(1)
	return memHandle{s, i}, nil
}

func (s *store) corrupt(i int, off int64) {
	s.mu.Lock()
	s.data[i][off] ^= 0xff
	s.mu.Unlock()
}

// layout makes files of the given sizes with random bytes, their correct
// sums as Want, and a verifier over them (not started).
func layout(t *testing.T, pieceLength int64, sizes ...int64) (*Verifier, *store) {
	t.Helper()
	s := &store{}
	var files []File
	var off int64
	rng := rand.New(rand.NewPCG(uint64(len(sizes)), uint64(pieceLength)))
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(b)
		s.data = append(s.data, b)
		files = append(files, File{Offset: off, Length: n, Want: sum[:]})
		off += n
	}
	v, err := New(Config{PieceLength: pieceLength, Files: files, Open: s.open, BufSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

func start(t *testing.T, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v.Start(ctx)
	t.Cleanup(func() { cancel(); v.Close() })
}

func wait(t *testing.T, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// waitFor polls cond for up to 30 s (a loaded machine is slow, never
// wrong).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func allVerified(t *testing.T, v *Verifier) {
	t.Helper()
	for i := range v.files {
		if r := v.Result(i); !r.Verified || r.Err != nil {
			t.Errorf("file %d: %+v, want verified", i, r)
		}
	}
}

// In order: each file is done as soon as its last piece is in, before the
// next pieces arrive, and every byte is read once.
func TestInOrderFinishesEachFileAtItsLastPiece(t *testing.T) {
	// 100-byte pieces: file 0 spans pieces 0-2, file 1 lies inside
	// piece 2, file 2 spans 2-5, file 3 is 5-7.
	v, s := layout(t, 100, 250, 30, 300, 170)
	start(t, v)
	last := []int{2, 2, 5, 7}
	for p := range v.NumPieces() {
		v.SetPiece(p, true)
		for i, lp := range last {
			if lp == p {
				waitFor(t, "file done at its last piece", func() bool { return v.Result(i).Done })
			}
		}
		for i, lp := range last {
			if lp > p && v.Result(i).Done {
				t.Fatalf("file %d done before its last piece %d is in (piece %d)", i, lp, p)
			}
		}
	}
	wait(t, v)
	allVerified(t, v)
	if got := s.read.Load(); got != 750 {
		t.Errorf("read %d bytes back, want each of 750 once", got)
	}
}

// A large file is hashed as its prefix grows, not all at its last piece.
func TestLargeFileHashedIncrementally(t *testing.T) {
	v, s := layout(t, 1000, 20000)
	start(t, v)
	for p := range 10 {
		v.SetPiece(p, true)
	}
	waitFor(t, "prefix of 10 pieces hashed", func() bool { return s.read.Load() == 10000 })
	v.SetPiece(15, true) // not contiguous: nothing more to read
	for p := 10; p < 20; p++ {
		if p != 15 {
			v.SetPiece(p, true)
		}
	}
	wait(t, v)
	allVerified(t, v)
	if got := s.read.Load(); got != 20000 {
		t.Errorf("read %d bytes, want 20000 (each once)", got)
	}
}

func TestOutOfOrder(t *testing.T) {
	for seed := range uint64(20) {
		sizes := []int64{0, 1, 999, 1000, 1001, 0, 5, 5, 5, 4096, 0, 3333, 1, 0}
		v, s := layout(t, 512, sizes...)
		start(t, v)
		order := rand.New(rand.NewPCG(seed, 7)).Perm(v.NumPieces())
		for _, p := range order {
			v.SetPiece(p, true)
		}
		wait(t, v)
		allVerified(t, v)
		var total int64
		for _, n := range sizes {
			total += n
		}
		if got := s.read.Load(); got != total {
			t.Errorf("seed %d: read %d bytes, want %d (each once)", seed, got, total)
		}
	}
}

// Many small files in one piece: all done when that piece is in, each
// opened once.
func TestManySmallFilesInOnePiece(t *testing.T) {
	sizes := make([]int64, 200)
	for i := range sizes {
		sizes[i] = int64(i % 7) // zero-length ones too
	}
	v, s := layout(t, 1<<20, sizes...)
	if v.NumPieces() != 1 {
		t.Fatalf("%d pieces, want 1", v.NumPieces())
	}
	start(t, v)
	v.SetPiece(0, true)
	wait(t, v)
	allVerified(t, v)
	nonEmpty := int64(0)
	for _, n := range sizes {
		if n > 0 {
			nonEmpty++
		}
	}
	if got := s.opens.Load(); got != nonEmpty {
		t.Errorf("%d opens, want %d (each non-empty file once)", got, nonEmpty)
	}
}

// Zero-length files need no piece and are verified at once; a torrent of
// only empty files has no pieces at all.
func TestZeroLengthFiles(t *testing.T) {
	v, s := layout(t, 100, 0, 0)
	if v.NumPieces() != 0 {
		t.Fatalf("%d pieces, want 0", v.NumPieces())
	}
	start(t, v)
	wait(t, v)
	allVerified(t, v)
	if s.opens.Load() != 0 {
		t.Error("opened an empty file")
	}
	want := sha256.Sum256(nil)
	if !bytes.Equal(v.Result(0).Sum, want[:]) {
		t.Errorf("sum of an empty file %x", v.Result(0).Sum)
	}

	v, _ = layout(t, 100, 150, 0, 50)
	if !v.Result(1).Verified {
		t.Error("empty file between two others not verified at once")
	}
}

func TestCorruptionDetected(t *testing.T) {
	v, s := layout(t, 100, 250, 40, 300)
	s.corrupt(2, 299) // last byte of the last file
	s.corrupt(0, 0)
	start(t, v)
	v.SetAll()
	wait(t, v)
	for i, bad := range []bool{true, false, true} {
		r := v.Result(i)
		if bad != errors.Is(r.Err, ErrMismatch) || bad == r.Verified {
			t.Errorf("file %d: %+v, corrupt %v", i, r, bad)
		}
	}
}

// A file that cannot be read back is done with the error, not verified.
func TestReadErrorFailsFile(t *testing.T) {
	v, s := layout(t, 100, 250, 50)
	s.data[0] = s.data[0][:200] // shorter on disk than in the layout
	start(t, v)
	v.SetAll()
	wait(t, v)
	if r := v.Result(0); r.Err == nil || r.Verified || errors.Is(r.Err, ErrMismatch) {
		t.Errorf("short file: %+v, want a read error", r)
	}
	if !v.Result(1).Verified {
		t.Errorf("file 1: %+v", v.Result(1))
	}
}

// A piece lost after it was hashed (its bytes gone or rewritten) discards
// that hash; the file is hashed again from the bytes that come back.
func TestLostPieceIsHashedAgain(t *testing.T) {
	v, s := layout(t, 100, 250, 250)
	start(t, v)
	good := bytes.Clone(s.data[1])
	s.corrupt(1, 100) // torrent offset 350: piece 3
	v.SetAll()
	wait(t, v)
	if !errors.Is(v.Result(1).Err, ErrMismatch) {
		t.Fatalf("file 1: %+v, want a mismatch", v.Result(1))
	}
	v.SetPiece(3, false)
	if r := v.Result(1); r.Done {
		t.Fatalf("file 1 still done after its piece was lost: %+v", r)
	}
	if !v.Result(0).Verified {
		t.Error("file 0 lost its result although it does not touch piece 3")
	}
	s.mu.Lock()
	s.data[1] = good
	s.mu.Unlock()
	v.SetPiece(3, true)
	wait(t, v)
	allVerified(t, v)
}

func TestCancellationStopsWorkers(t *testing.T) {
	v, _ := layout(t, 100, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	v.Start(ctx)
	v.SetPiece(0, true)
	cancel()
	done := make(chan struct{})
	go func() { v.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return after cancel")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := v.Wait(wctx); err == nil || wctx.Err() != nil {
		t.Fatalf("Wait on a stopped verifier: %v", err)
	}
	// Wait gives up when its own context ends, too.
	v2, _ := layout(t, 100, 1000)
	start(t, v2)
	short, scancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer scancel()
	if err := v2.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with pieces missing: %v", err)
	}
}

// The gate bounds hashing across verifiers; both still finish.
func TestSharedGate(t *testing.T) {
	g := NewGate(1)
	var vs []*Verifier
	for range 3 {
		v, _ := layout(t, 64, 1000, 1, 2000)
		v.cfg.Gate = g
		start(t, v)
		vs = append(vs, v)
	}
	for _, v := range vs {
		v.SetAll()
	}
	for _, v := range vs {
		wait(t, v)
		allVerified(t, v)
	}
}

// Real files: a verified file was synced (os.File), the sum matches.
func TestOSFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := bytes.Repeat([]byte("a"), 3000), []byte("tail")
	for name, d := range map[string][]byte{"a": a, "b": b} {
		if err := os.WriteFile(filepath.Join(dir, name), d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := sha256.Sum256(a), sha256.Sum256(b)
	names := []string{"a", "b"}
	v, err := New(Config{PieceLength: 1024, Files: []File{{0, 3000, sa[:]}, {3000, 4, sb[:]}},
		Open: func(i int) (Handle, error) { return os.Open(filepath.Join(dir, names[i])) }})
	if err != nil {
		t.Fatal(err)
	}
	start(t, v)
	v.SetAll()
	wait(t, v)
	allVerified(t, v)
}

func TestLayoutChecked(t *testing.T) {
	open := func(int) (Handle, error) { return nil, errors.New("no") }
	for name, cfg := range map[string]Config{
		"gap":         {PieceLength: 10, Files: []File{{0, 5, nil}, {6, 5, nil}}, Open: open},
		"not at 0":    {PieceLength: 10, Files: []File{{1, 5, nil}}, Open: open},
		"no piece":    {Files: []File{{0, 5, nil}}, Open: open},
		"short want":  {PieceLength: 10, Files: []File{{0, 5, []byte{1}}}, Open: open},
		"no open":     {PieceLength: 10, Files: []File{{0, 5, nil}}},
		"negative ln": {PieceLength: 10, Files: []File{{0, -1, nil}}, Open: open},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Pieces lost and rewritten while workers read: bytes of a piece change
// only while it is not complete (as in a torrent), so every file ends
// verified once all pieces are back, whatever the interleaving.
func TestPiecesLostWhileHashing(t *testing.T) {
	const pl = 64
	v, s := layout(t, pl, 100000, 3, 0, 700, 64, 129)
	start(t, v)
	// offsets of each file, to find the bytes of a piece
	type span struct {
		file     int
		off, end int64
	}
	spans := func(p int) []span {
		var out []span
		var off int64
		for i, d := range s.data {
			n := int64(len(d))
			b, e := max(int64(p)*pl, off), min(int64(p+1)*pl, off+n)
			if b < e {
				out = append(out, span{i, b - off, e - off})
			}
			off += n
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	v.SetAll()
	for range 1000 {
		p := rng.IntN(v.NumPieces())
		v.SetPiece(p, false)
		sp := spans(p)
		for _, x := range sp {
			s.corrupt(x.file, x.off) // a peer's bad bytes, then the good ones again
		}
		time.Sleep(20 * time.Microsecond) // let workers run into them
		for _, x := range sp {
			s.corrupt(x.file, x.off)
		}
		v.SetPiece(p, true)
		// Only bytes read while a piece was incomplete could mismatch,
		// and those reads must have been discarded.
		for i := range v.files {
			if r := v.Result(i); r.Err != nil {
				t.Fatalf("file %d: %v", i, r.Err)
			}
		}
	}
	wait(t, v)
	allVerified(t, v)
}

// Wait and the workers sleep on one condition variable. A caller already
// in Wait when the pieces arrive must not take the wake-up meant for a
// worker: with Signal, the longest sleeper (Wait) woke, found files
// unsettled, slept again, and no worker ever hashed them (the agent hung
// in verification with the release complete on disk).
func TestWaitDoesNotSwallowWorkersWakeUp(t *testing.T) {
	for range 20 {
		v, _ := layout(t, 100, 250) // one file: one wake-up
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done <- v.Wait(ctx)
		}()
		time.Sleep(10 * time.Millisecond) // Wait first in line, usually
		ctx, cancel := context.WithCancel(context.Background())
		v.Start(ctx)
		time.Sleep(10 * time.Millisecond) // the workers asleep behind it
		v.SetAll()
		if err := <-done; err != nil {
			t.Fatalf("Wait: %v (files never hashed)", err)
		}
		allVerified(t, v)
		cancel()
		v.Close()
	}
}

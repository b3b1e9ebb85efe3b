package agent

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	bolt "go.etcd.io/bbolt"
)

// completionFile is the piece-completion database in the state directory.
// Its name and layout are those of the torrent library's bolt piece
// completion (storage.NewBoltPieceCompletion), so caches written before
// keep their completion, and the library's reader still reads this one.
const completionFile = ".torrent.bolt.db"

var (
	completionBucket = []byte("completion")
	countersBucket   = []byte("counters")
)

// savedCounters is a release's byte counters as of its last completed
// piece.
type savedCounters struct {
	Downloaded Bytes `json:"downloaded"`
	Uploaded   int64 `json:"uploaded"`
}

// completionDB records which pieces are complete and, with each piece
// marked complete, the release's byte counters in the same transaction.
// Like the library's, it does not fsync (a write per piece): what it wrote
// survives the process being killed (kill -9) but not a power cut; a
// crash of the machine may lose recent pieces, which are then checked and
// fetched again, and the counters fall back to the last state save.
//
// Bound: after kill -9 and restart the reported totals are at least the
// counters read when the last piece was marked complete (the state
// database's save, once a second, may be newer and then wins).
type completionDB struct {
	db   *bolt.DB
	path string
	// counters, if set, reads a release's live totals by infohash; it is
	// called only when a piece is marked complete, from the library's
	// hashing goroutine, which holds no client lock there.
	counters atomic.Pointer[func(metainfo.Hash) (savedCounters, bool)]
}

var _ storage.PieceCompletion = (*completionDB)(nil)

func openCompletion(stateDir string, log *slog.Logger) (*completionDB, *Recovery, error) {
	path := filepath.Join(stateDir, completionFile)
	db, rec, err := openBoltRecovering(path, "piece-completion database", log, &bolt.Options{Timeout: time.Second}, nil)
	if err != nil {
		return nil, nil, err
	}
	db.NoSync = true
	return &completionDB{db: db, path: path}, rec, nil
}

func pieceKeyBytes(i int) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], uint32(i))
	return k[:]
}

// Get implements storage.PieceCompletion.
func (c *completionDB) Get(pk metainfo.PieceKey) (cn storage.Completion, err error) {
	err = noPanic(c.path, func() error {
		return c.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(completionBucket)
			if b == nil {
				return nil
			}
			ih := b.Bucket(pk.InfoHash[:])
			if ih == nil {
				return nil
			}
			switch string(ih.Get(pieceKeyBytes(pk.Index))) {
			case "c":
				cn.Ok, cn.Complete = true, true
			case "i":
				cn.Ok = true
			}
			return nil
		})
	})
	return cn, err
}

// Set implements storage.PieceCompletion.
func (c *completionDB) Set(pk metainfo.PieceKey, complete bool) error {
	var saved []byte
	if complete {
		if f := c.counters.Load(); f != nil {
			if sc, ok := (*f)(pk.InfoHash); ok {
				saved, _ = json.Marshal(sc)
			}
		}
	} else if cn, err := c.Get(pk); err == nil && cn.Ok && !cn.Complete {
		return nil // the library marks pieces incomplete often
	}
	return noPanic(c.path, func() error {
		return c.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(completionBucket)
			if err != nil {
				return err
			}
			ih, err := b.CreateBucketIfNotExists(pk.InfoHash[:])
			if err != nil {
				return err
			}
			v := []byte("i")
			if complete {
				v = []byte("c")
			}
			if err := ih.Put(pieceKeyBytes(pk.Index), v); err != nil {
				return err
			}
			if saved == nil {
				return nil
			}
			cb, err := tx.CreateBucketIfNotExists(countersBucket)
			if err != nil {
				return err
			}
			return cb.Put(pk.InfoHash[:], saved)
		})
	})
}

// Counters returns the counters saved with a release's last completed
// piece.
func (c *completionDB) Counters(ih metainfo.Hash) (sc savedCounters, ok bool, err error) {
	err = noPanic(c.path, func() error {
		return c.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(countersBucket)
			if b == nil {
				return nil
			}
			v := b.Get(ih[:])
			if v == nil {
				return nil
			}
			if err := json.Unmarshal(v, &sc); err != nil {
				return fmt.Errorf("%s: counters of %s: %w", c.path, ih, err)
			}
			ok = true
			return nil
		})
	})
	return sc, ok, err
}

// Forget drops a release's completion and counters (it was evicted).
func (c *completionDB) Forget(ih metainfo.Hash) error {
	return noPanic(c.path, func() error {
		return c.db.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket(completionBucket); b != nil && b.Bucket(ih[:]) != nil {
				if err := b.DeleteBucket(ih[:]); err != nil {
					return err
				}
			}
			if b := tx.Bucket(countersBucket); b != nil {
				return b.Delete(ih[:])
			}
			return nil
		})
	})
}

// Close implements storage.PieceCompletion.
func (c *completionDB) Close() error {
	return noPanic(c.path, c.db.Close)
}

// maxCounters is the later of two snapshots of the same monotonic
// counters, field by field.
func maxCounters(a, b savedCounters) savedCounters {
	return savedCounters{
		Downloaded: Bytes{Peer: max(a.Downloaded.Peer, b.Downloaded.Peer), Origin: max(a.Downloaded.Origin, b.Downloaded.Origin), WebSeed: max(a.Downloaded.WebSeed, b.Downloaded.WebSeed)},
		Uploaded:   max(a.Uploaded, b.Uploaded),
	}
}

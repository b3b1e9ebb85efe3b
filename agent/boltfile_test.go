package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/swarmship/swarmship/internal/testenv"
)

func TestOpenCorruptDatabasesRecovers(t *testing.T) {
	for _, db := range []string{"state", "completion"} {
		for _, c := range testenv.BoltDamages {
			t.Run(db+"/"+c.Name, func(t *testing.T) {
				dir := t.TempDir()
				var logs bytes.Buffer
				log := slog.New(slog.NewTextHandler(&logs, nil))
				open := func() (string, *Recovery, func() error) {
					if db == "state" {
						s, rec, err := openState(filepath.Join(dir, "agent.db"), log)
						if err != nil {
							t.Fatal(err)
						}
						// Enough records for several data pages, in one transaction.
						if err := s.update(func(tx *bolt.Tx) error {
							for i := range 200 {
								r := ReleaseState{Name: "app", Version: fmt.Sprintf("%s%d", strings.Repeat("v", 100), i)}
								b, _ := json.Marshal(&r)
								if err := tx.Bucket(releasesBucket).Put([]byte(r.Key()), b); err != nil {
									return err
								}
							}
							return nil
						}); err != nil {
							t.Fatal(err)
						}
						if _, err := s.All(); err != nil {
							t.Fatal(err)
						}
						return s.path, rec, s.Close
					}
					c, rec, err := openCompletion(dir, log)
					if err != nil {
						t.Fatal(err)
					}
					// A few pieces through Set, the rest in one transaction.
					for i := range 20 {
						if err := c.Set(metainfo.PieceKey{Index: i}, true); err != nil {
							t.Fatal(err)
						}
					}
					if err := c.db.Update(func(tx *bolt.Tx) error {
						b := tx.Bucket(completionBucket).Bucket(make([]byte, 20))
						for i := 20; i < 2000; i++ {
							if err := b.Put(pieceKeyBytes(i), []byte("c")); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if _, err := c.Get(metainfo.PieceKey{Index: 7}); err != nil {
						t.Fatal(err)
					}
					return c.path, rec, c.Close
				}
				path, rec, closeDB := open()
				if rec != nil {
					t.Fatalf("fresh database reported a recovery: %+v", rec)
				}
				closeDB()
				c.Do(t, path)
				_, rec, closeDB = open()
				defer closeDB()
				if rec == nil {
					t.Fatalf("no recovery reported; log:\n%s", logs.String())
				}
				t.Logf("%+v", *rec)
				if rec.File != path {
					t.Errorf("recovery names %q, want %q", rec.File, path)
				}
				if !strings.Contains(logs.String(), path) {
					t.Errorf("log does not name %s:\n%s", path, logs.String())
				}
				if rec.MovedTo != "" {
					if _, err := os.Stat(rec.MovedTo); err != nil {
						t.Errorf("moved-aside copy: %v", err)
					}
					if !strings.Contains(logs.String(), rec.MovedTo) {
						t.Errorf("log does not name %s", rec.MovedTo)
					}
				}
			})
		}
	}
}

// The raw layout check must pass every file bbolt itself writes (a false
// alarm would move good state aside): nested and inline buckets, values
// spanning overflow pages, deletes that fill the freelist, checked after
// every commit.
func TestBoltLayoutAcceptsValidFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.NoSync = true
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 150 {
		err := db.Update(func(tx *bolt.Tx) error {
			top, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("top%d", r.IntN(3))))
			if err != nil {
				return err
			}
			for range r.IntN(50) {
				k := []byte(fmt.Sprintf("k%04d", r.IntN(2000)))
				switch r.IntN(6) {
				case 0:
					sub, err := top.CreateBucketIfNotExists([]byte(fmt.Sprintf("sub%d", r.IntN(20))))
					if err != nil {
						return err
					}
					if err := sub.Put(k, make([]byte, r.IntN(64))); err != nil {
						return err
					}
				case 1:
					if err := top.Delete(k); err != nil {
						return err
					}
				case 2:
					if err := top.Put(k, make([]byte, r.IntN(20000))); err != nil { // overflow pages
						return err
					}
				case 3:
					if b := top.Bucket([]byte(fmt.Sprintf("sub%d", r.IntN(20)))); b != nil {
						if err := top.DeleteBucket([]byte(fmt.Sprintf("sub%d", r.IntN(20)))); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
							return err
						}
					}
				default:
					if err := top.Put(k, []byte(strings.Repeat("v", r.IntN(300)))); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := boltLayout(b); err != nil {
			t.Fatalf("round %d: valid file (%d bytes) refused: %v", round, len(b), err)
		}
	}
	if st, _ := os.Stat(path); st != nil {
		t.Logf("final file %d bytes", st.Size())
	}
}

// A database held by another agent on the same cache is refused with its
// name, never taken for corrupt and moved aside.
func TestOpenLockedDatabaseIsNotMovedAside(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, _, err := openState(filepath.Join(dir, "agent.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, err = openState(s.path, log)
	if err == nil || !strings.Contains(err.Error(), s.path) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want a locked error naming %s", err, s.path)
	}
	if aside, _ := filepath.Glob(s.path + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("a locked database was moved aside: %v", aside)
	}
}

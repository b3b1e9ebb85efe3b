package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/swarmship/swarmship/internal/release"
)

// Phase is where a release is in the agent's state machine:
// queued → downloading → verified → active, or failed (retried later).
type Phase string

// Release phases.
const (
	PhaseQueued      Phase = "queued"
	PhaseDownloading Phase = "downloading"
	PhaseVerified    Phase = "verified"
	PhaseActive      Phase = "active"
	PhaseFailed      Phase = "failed"
)

// Bytes counts payload bytes by where they came from.
type Bytes struct {
	Peer    int64 `json:"peer"`    // other agents and BitTorrent peers
	Origin  int64 `json:"origin"`  // range requests to the catalog's payload (origin web seed or S3)
	WebSeed int64 `json:"webseed"` // the torrent library's own web seed (off for agents)
}

// Total is all downloaded payload bytes.
func (b Bytes) Total() int64 { return b.Peer + b.Origin + b.WebSeed }

// ReleaseState is one release's record in the state database.
type ReleaseState struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	InfoHash   string `json:"infohash"`
	Phase      Phase  `json:"state"`
	Size       int64  `json:"size"`
	Completed  int64  `json:"completed"`
	Downloaded Bytes  `json:"downloaded"`
	Uploaded   int64  `json:"uploaded"`
	// Reused is payload bytes taken from releases already held (issue 17:
	// whole files and pieces rebuilt locally), not downloaded.
	Reused    int64     `json:"reused,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Reason    string    `json:"reason,omitempty"` // why it waits
	Queued    time.Time `json:"queued"`
	Started   time.Time `json:"started,omitzero"`
	Verified  time.Time `json:"verified,omitzero"`
	Activated time.Time `json:"activated,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	// HealthFailed: hooks.health_check failed on this version and it was
	// rolled back; it is not activated again until the rollout plan's
	// retry rises above HealthRetry (agent/health.go).
	HealthFailed bool `json:"health_failed,omitempty"`
	// HealthPending: activated, health check not passed yet; a restart
	// runs it again (a kill between switch and check is not a pass).
	HealthPending bool `json:"health_pending,omitempty"`
	HealthRetry   int  `json:"health_retry,omitempty"`
}

// Key is the release's database key.
func (r *ReleaseState) Key() string { return release.Format(r.Name, r.Version) }

var releasesBucket = []byte("releases")

// stateDB persists release states in bbolt. Every write is one transaction,
// fsynced by bbolt, so a crash never leaves a half-written record.
type stateDB struct {
	db   *bolt.DB
	path string
}

var stateOptions = &bolt.Options{Timeout: 2 * time.Second}

// checkState reads every record: a record that does not decode makes the
// file as unusable as a broken page.
func checkState(tx *bolt.Tx) error {
	b := tx.Bucket(releasesBucket)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var r ReleaseState
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("state record %q: %w", k, err)
		}
		return nil
	})
}

// openState opens the state database at path; a corrupt one is moved
// aside and replaced by a fresh one (rec says so), from which the agent
// rebuilds its records by re-verifying what is on disk.
func openState(path string, log *slog.Logger) (s *stateDB, rec *Recovery, err error) {
	db, rec, err := openBoltRecovering(path, "state database", log, stateOptions, checkState)
	if err != nil {
		return nil, nil, err
	}
	s = &stateDB{db: db, path: path}
	if err := s.update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(releasesBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, rec, nil
}

func (s *stateDB) update(fn func(*bolt.Tx) error) error {
	return noPanic(s.path, func() error { return s.db.Update(fn) })
}

func (s *stateDB) view(fn func(*bolt.Tx) error) error {
	return noPanic(s.path, func() error { return s.db.View(fn) })
}

func (s *stateDB) Close() error { return s.db.Close() }

func (s *stateDB) Put(r *ReleaseState) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(releasesBucket).Put([]byte(r.Key()), b)
	})
}

func (s *stateDB) Get(key string) (*ReleaseState, bool, error) {
	var r *ReleaseState
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(releasesBucket).Get([]byte(key))
		if b == nil {
			return nil
		}
		r = new(ReleaseState)
		return json.Unmarshal(b, r)
	})
	return r, r != nil, err
}

func (s *stateDB) Delete(key string) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(releasesBucket).Delete([]byte(key))
	})
}

// All returns every record, sorted by key.
func (s *stateDB) All() ([]*ReleaseState, error) {
	var out []*ReleaseState
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(releasesBucket).ForEach(func(k, v []byte) error {
			r := new(ReleaseState)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("%s: state record %s: %w", s.path, k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, err
}

// ReadState returns the release records of a stopped agent's cache. It
// only reads: a corrupt file is reported (naming it), not moved aside.
func ReadState(cacheDir string) ([]*ReleaseState, error) {
	path := filepath.Join(cacheDir, "state", "agent.db")
	db, err := openBoltChecked(path, stateOptions, checkState)
	if err != nil {
		return nil, err
	}
	s := &stateDB{db: db, path: path}
	defer s.Close()
	return s.All()
}

// saveRecord is the agent's one path for writing a release record. A
// failed write (a full disk, a damaged file) is logged once when writes
// start failing and once when they work again, and returned: a step that
// cannot go on without the record returns it; one that can goes on, and
// the next pass writes the record again.
func (a *Agent) saveRecord(rec *ReleaseState) error {
	err := a.state.Put(rec)
	if err != nil {
		if !a.stateFailing.Swap(true) {
			a.log.Error("cannot save release state; retrying on the next pass", "release", rec.Name, "version", rec.Version, "file", a.state.path, "err", err)
		}
		return fmt.Errorf("save state of %s: %w", rec.Key(), err)
	}
	if a.stateFailing.Swap(false) {
		a.log.Info("release state saved again", "file", a.state.path)
	}
	return nil
}

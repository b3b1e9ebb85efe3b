package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/swarmship/swarmship/internal/report"
)

// agentRecord is what the origin keeps per agent, in memory and in bbolt.
type agentRecord struct {
	Report    *report.Report          `json:"report"`
	Received  time.Time               `json:"received"`
	FirstSeen time.Time               `json:"first_seen"`
	Progress  map[string]progressMark `json:"progress"` // by name@version
	History   []historyEntry          `json:"history"`  // oldest first
	// Addr is the address the agent reports from. Without tokens a
	// record is bound to it while the agent is live, so that nobody else
	// can overwrite it by reusing its id.
	Addr string `json:"addr,omitempty"`

	size int    // bytes of the stored JSON, counted against the budgets
	lim  bucket // per-identity rate
	// gen is when this origin last wrote the record into its table (a
	// count of writes): a shared store's sync does not overwrite a record
	// written after the sync began reading.
	gen uint64
	ver uint64 // the shared store's version of the record read
}

// recordStore is where the agents' records live. Ingest reads an agent's
// record, builds the next one and puts it back only if nobody replaced it
// meanwhile; views aggregate s.agents, which is the records themselves
// (memStore) or this origin's copy of shared ones, refreshed by sync
// (redisStore). Implementations return state.ErrUnavailable (wrapped)
// when they cannot be reached.
type recordStore interface {
	// get is the agent's stored record with its history; nil if none.
	// The caller must not modify it.
	get(ctx context.Context, key string) (*agentRecord, error)
	// put stores rec (blob is its JSON) in place of prev (nil: none;
	// a prev past forget is replaced as if the agent were new), within
	// the budgets (errTooManyAgents, errReportsFull), or returns
	// errConflict if the stored record is no longer prev.
	put(ctx context.Context, key string, prev, rec *agentRecord, blob []byte) error
	// forget deletes the records of keys if they have not been written
	// since cutoff. Tick has dropped them from s.agents already.
	forget(ctx context.Context, keys []string, cutoff time.Time)
	// sync brings s.agents up to date; called by Tick.
	sync(ctx context.Context) error
	close() error
}

// memStore keeps the records in this origin's memory (s.agents), and
// in reports.db when there is a cache dir.
type memStore struct{ s *Reports }

func (m memStore) get(_ context.Context, key string) (*agentRecord, error) {
	m.s.mu.RLock()
	defer m.s.mu.RUnlock()
	return m.s.agents[key], nil
}

func (m memStore) put(_ context.Context, key string, prev, rec *agentRecord, blob []byte) error {
	s := m.s
	s.mu.Lock()
	old := s.agents[key]
	if old != prev {
		s.mu.Unlock()
		return errConflict
	}
	if old != nil && rec.Received.Sub(old.Received) > s.cfg.Forget {
		s.dropLocked(key)
		old = nil
	}
	if err := s.admitLocked(rec.Report.Tenant, old, len(blob)); err != nil {
		s.mu.Unlock()
		return err
	}
	s.gen++
	rec.gen = s.gen
	s.setLocked(key, old, rec)
	s.mu.Unlock()
	if err := s.storeDB(key, blob); err != nil {
		s.log.Warn("cannot store agent report", "agent", rec.Report.AgentID, "err", err)
	}
	return nil
}

func (m memStore) forget(_ context.Context, keys []string, _ time.Time) { m.s.deleteStored(keys) }

func (m memStore) sync(context.Context) error { return nil }

func (m memStore) close() error {
	if m.s.db == nil {
		return nil
	}
	return m.s.db.Close()
}

// progressMark is when a release last moved on an agent: its completed
// bytes grew or its state changed.
type progressMark struct {
	State     string    `json:"state"`
	Completed int64     `json:"completed"`
	Since     time.Time `json:"since"`
}

// historyEntry is one past report, reduced to what charts need.
type historyEntry struct {
	Time     time.Time     `json:"time"`
	Releases []historyItem `json:"releases"`
}

type historyItem struct {
	Release    string       `json:"release"`
	State      string       `json:"state"`
	Completed  int64        `json:"completed"`
	Downloaded report.Bytes `json:"downloaded"`
	Uploaded   int64        `json:"uploaded"`
}

var reportsBucket = []byte("agents")

// openDB opens cacheDir/reports.db and loads the records it holds
// within the bounds; a record the bounds refuse is deleted.
func (s *Reports) openDB(cacheDir string) error {
	cfg := s.cfg
	path := filepath.Join(cacheDir, "reports.db")
	if err := os.MkdirAll(cacheDir, 0o750); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("report database %s is locked: is another origin running on this cache?", path)
		}
		return fmt.Errorf("open report database %s: %w", path, err)
	}
	now := s.now()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(reportsBucket)
		if err != nil {
			return err
		}
		// The same bounds as for live reports: a database filled before
		// they existed (or by hand) cannot bring back more than they allow.
		var stale [][]byte
		rekey := map[string][]byte{}
		err = b.ForEach(func(k, v []byte) error {
			var rec agentRecord
			if len(v) > cfg.MaxRecordBytes || json.Unmarshal(v, &rec) != nil || rec.Report == nil || rec.Report.Validate() != nil || now.Sub(rec.Received) > cfg.Forget {
				stale = append(stale, k)
				return nil
			}
			key := recordKey(rec.Report.Tenant, rec.Report.AgentID)
			if s.agents[key] != nil || s.admitLocked(rec.Report.Tenant, nil, len(v)) != nil {
				stale = append(stale, k)
				return nil
			}
			if rec.Progress == nil {
				rec.Progress = map[string]progressMark{}
			}
			rec.size = len(v)
			s.account(rec.Report.Tenant, rec.size, 1)
			s.agents[key] = &rec
			if string(k) != key {
				stale = append(stale, k)
				rekey[key] = v
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for k, v := range rekey {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("report database %s: %w", path, err)
	}
	s.db = db
	if len(s.agents) > 0 {
		s.log.Info("agent reports restored", "agents", len(s.agents), "path", path)
	}
	return nil
}

// storeDB writes an agent's record to reports.db, if there is one.
func (s *Reports) storeDB(key string, blob []byte) error {
	if s.db == nil {
		return nil
	}
	// Batch coalesces concurrent reports into one transaction.
	return s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(reportsBucket).Put([]byte(key), blob)
	})
}

// deleteStored deletes forgotten agents' records from reports.db.
func (s *Reports) deleteStored(keys []string) {
	if s.db == nil {
		return
	}
	for _, key := range keys {
		if err := s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(reportsBucket).Delete([]byte(key)) }); err != nil {
			s.log.Warn("cannot delete a forgotten agent's report", "record", key, "err", err)
		}
	}
}

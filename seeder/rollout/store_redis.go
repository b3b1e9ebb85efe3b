package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/internal/state"
)

// Key layout of the shared reports (P is state.redis.prefix):
//
//	P:{reports}:agent:<tenant>/<agent>  hash  rec   the record without history (JSON)
//	                                        hist  its history (JSON array)
//	                                        size  bytes counted against the budgets
//	                                        ver   writes so far, for compare-and-set
//	P:{reports}:index                   zset  member <tenant>/<agent>, score: received (unix ms)
//	P:{reports}:use                     hash  agents, bytes, agents:<tenant>, bytes:<tenant>
//	P:{reports}:epoch                   string  random; set by the first origin to find it missing
//
// The history sits in the agent's hash but apart from rec so that the
// origins' once-a-second sync reads only the small part views need.
// Every write goes through one script that checks the version read and
// the budgets and updates the record, the index and the use counters
// together, so the budgets hold across origins.

// Timing of the sync with the shared store.
const (
	syncTimeout   = 5 * time.Second  // one sync or forget round, besides the client's own timeouts
	fullSyncEvery = 30 * time.Second // a whole read of the index, to see deletions and skewed clocks
	// syncSlack re-reads records received this long before the newest
	// seen, for origins whose clocks differ by up to that much.
	syncSlack  = 10 * time.Second
	fetchChunk = 500 // records read per pipeline
)

// putScript stores a record if its version is still ARGV[2] (0: absent)
// and the budgets allow. It answers {"ok", ver}, {"conflict"}, {"agents"}
// or {"full"}.
var putScript = redis.NewScript(`
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if ver ~= tonumber(ARGV[2]) then return {'conflict'} end
local size = tonumber(ARGV[5])
local at, bt = 'agents:' .. ARGV[7], 'bytes:' .. ARGV[7]
local old, new = 0, ver == 0
if ver ~= 0 then
  old = tonumber(redis.call('HGET', KEYS[1], 'size') or '0')
  -- a record past forget is replaced as if the agent were new
  local score = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0')
  if score < tonumber(ARGV[12]) then new = true end
end
if new then
  local n = tonumber(redis.call('HGET', KEYS[3], 'agents') or '0')
  local nt = tonumber(redis.call('HGET', KEYS[3], at) or '0')
  if ver ~= 0 then n, nt = n - 1, nt - 1 end
  if n >= tonumber(ARGV[8]) or nt >= tonumber(ARGV[9]) then return {'agents'} end
end
local grow = size - old
if grow > 0 then
  local b = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '0')
  local tb = tonumber(redis.call('HGET', KEYS[3], bt) or '0')
  if tb + grow > tonumber(ARGV[10]) or b + grow > tonumber(ARGV[11]) then return {'full'} end
end
redis.call('HSET', KEYS[1], 'rec', ARGV[3], 'hist', ARGV[4], 'size', size, 'ver', ver + 1)
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
if ver == 0 then
  redis.call('HINCRBY', KEYS[3], 'agents', 1)
  redis.call('HINCRBY', KEYS[3], at, 1)
end
if grow ~= 0 then
  redis.call('HINCRBY', KEYS[3], 'bytes', grow)
  redis.call('HINCRBY', KEYS[3], bt, grow)
end
return {'ok', ver + 1}
`)

// forgetScript deletes a record not written since ARGV[2] (unix ms) and
// gives its budget back. It answers 1 if it deleted it.
var forgetScript = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
local size = tonumber(redis.call('HGET', KEYS[1], 'size') or '0')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local at, bt = 'agents:' .. ARGV[3], 'bytes:' .. ARGV[3]
redis.call('HINCRBY', KEYS[3], 'agents', -1)
redis.call('HINCRBY', KEYS[3], 'bytes', -size)
if redis.call('HINCRBY', KEYS[3], at, -1) <= 0 then redis.call('HDEL', KEYS[3], at, bt)
else redis.call('HINCRBY', KEYS[3], bt, -size) end
return 1
`)

// redisStore keeps the records in a Redis several origins share;
// s.agents is this origin's copy for the views, without history.
type redisStore struct {
	s   *Reports
	rdb *state.Redis

	// Guarded by syncMu: one sync at a time.
	syncMu   chan struct{}
	mark     int64     // newest received (unix ms) seen in the index
	lastFull time.Time // last whole read of the index
	epoch    string    // the Redis's epoch when last synced
}

func newRedisStore(s *Reports, rdb *state.Redis) *redisStore {
	return &redisStore{s: s, rdb: rdb, syncMu: make(chan struct{}, 1)}
}

// The keys share the hash tag {reports}: the scripts touch several of
// them at once, which Redis Cluster allows only within one slot.
func (r *redisStore) agentKey(key string) string { return r.rdb.Key("{reports}", "agent", key) }
func (r *redisStore) indexKey() string           { return r.rdb.Key("{reports}", "index") }
func (r *redisStore) useKey() string             { return r.rdb.Key("{reports}", "use") }
func (r *redisStore) epochKey() string           { return r.rdb.Key("{reports}", "epoch") }

func unavailable(err error) error { return fmt.Errorf("%w: %w", state.ErrUnavailable, err) }

// decodeRecord reads a record's fields as HMGET returned them; nil if
// the record is absent or does not hold a valid report.
func decodeRecord(rec, hist, size, ver any) (*agentRecord, uint64) {
	rs, ok := rec.(string)
	if !ok {
		return nil, 0
	}
	var out agentRecord
	if json.Unmarshal([]byte(rs), &out) != nil || out.Report == nil || out.Report.Validate() != nil {
		return nil, 0
	}
	if hs, ok := hist.(string); ok {
		out.History = nil
		if json.Unmarshal([]byte(hs), &out.History) != nil {
			out.History = nil
		}
	}
	if out.Progress == nil {
		out.Progress = map[string]progressMark{}
	}
	ss, _ := size.(string)
	out.size, _ = strconv.Atoi(ss)
	vs, _ := ver.(string)
	v, _ := strconv.ParseUint(vs, 10, 64)
	return &out, v
}

func (r *redisStore) get(ctx context.Context, key string) (*agentRecord, error) {
	vals, err := r.rdb.Client.HMGet(ctx, r.agentKey(key), "rec", "hist", "size", "ver").Result()
	if err != nil {
		return nil, unavailable(err)
	}
	rec, ver := decodeRecord(vals[0], vals[1], vals[2], vals[3])
	if rec == nil {
		if vals[3] != nil {
			// Present but unreadable: replace it (CAS on its version) as if new.
			vs, _ := vals[3].(string)
			v, _ := strconv.ParseUint(vs, 10, 64)
			return placeholder(v), nil
		}
		return nil, nil
	}
	rec.ver = ver
	return rec, nil
}

// placeholder stands for an unreadable stored record so that the next
// report replaces it: its received time is zero, so it counts as forgotten.
func placeholder(ver uint64) *agentRecord {
	return &agentRecord{ver: ver, Progress: map[string]progressMark{}}
}

func (r *redisStore) put(ctx context.Context, key string, prev, rec *agentRecord, blob []byte) error {
	s := r.s
	var ver uint64
	if prev != nil {
		ver = prev.ver
	}
	hist, err := json.Marshal(rec.History)
	if err != nil {
		return err
	}
	head := *rec
	head.History = nil
	headJSON, err := json.Marshal(&head)
	if err != nil {
		return err
	}
	forgotten := rec.Received.Add(-s.cfg.Forget).UnixMilli()
	res, err := putScript.Run(ctx, r.rdb.Client,
		[]string{r.agentKey(key), r.indexKey(), r.useKey()},
		key, ver, headJSON, hist, len(blob), rec.Received.UnixMilli(), rec.Report.Tenant,
		s.cfg.MaxAgents, s.cfg.MaxAgentsPerTenant, s.cfg.MaxTenantBytes, s.cfg.MaxBytes, forgotten).Slice()
	if err != nil {
		return unavailable(err)
	}
	verdict, _ := res[0].(string)
	switch verdict {
	case "conflict":
		return errConflict
	case "agents":
		return errTooManyAgents
	case "full":
		return errReportsFull
	case "ok":
	default:
		return unavailable(fmt.Errorf("unexpected answer %v", res))
	}
	newVer, _ := res[1].(int64)
	// This origin's copy: what views need, without history.
	local := head
	local.ver = uint64(newVer)
	local.size = len(blob)
	s.mu.Lock()
	s.gen++
	local.gen = s.gen
	s.setLocked(key, s.agents[key], &local)
	s.mu.Unlock()
	return nil
}

func (r *redisStore) forget(ctx context.Context, keys []string, cutoff time.Time) {
	pipe := r.rdb.Client.Pipeline()
	for _, key := range keys {
		tenant, _, _ := cutTenant(key)
		// Eval, not EvalSha: in a pipeline a missing script (a restarted
		// Redis) would show only at Exec.
		forgetScript.Eval(ctx, pipe, []string{r.agentKey(key), r.indexKey(), r.useKey()}, key, cutoff.UnixMilli(), tenant)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.s.log.Warn("agent reports: cannot forget silent agents in the shared state; the next tick retries", "agents", len(keys), "err", err)
	}
}

// cutTenant splits a record key into tenant and agent id (tenants hold no '/').
func cutTenant(key string) (tenant, agent string, ok bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

// sync reads the records written since the last sync (by the index's
// scores, minus syncSlack) and, every fullSyncEvery or when the counts
// disagree, the whole index, which also shows deletions. A failed sync
// leaves s.agents as it was: the views show the last records read.
func (r *redisStore) sync(ctx context.Context) error {
	select {
	case r.syncMu <- struct{}{}:
		defer func() { <-r.syncMu }()
	case <-ctx.Done():
		return ctx.Err()
	}
	s := r.s
	now := s.now()
	s.mu.RLock()
	gen0 := s.gen
	s.mu.RUnlock()
	c := r.rdb.Client
	if err := r.checkEpoch(ctx); err != nil {
		return err
	}
	full := r.lastFull.IsZero() || now.Sub(r.lastFull) >= fullSyncEvery || now.Before(r.lastFull)
	var members []redis.Z
	var card int64
	if full {
		zs, err := c.ZRangeWithScores(ctx, r.indexKey(), 0, -1).Result()
		if err != nil {
			return unavailable(err)
		}
		members, card = zs, int64(len(zs))
	} else {
		pipe := c.Pipeline()
		zr := pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: r.indexKey(), ByScore: true,
			Start: strconv.FormatInt(r.mark-syncSlack.Milliseconds(), 10), Stop: "+inf"})
		zc := pipe.ZCard(ctx, r.indexKey())
		if _, err := pipe.Exec(ctx); err != nil {
			return unavailable(err)
		}
		members, card = zr.Val(), zc.Val()
	}
	// Which records changed: not held, or held with another received time.
	var stale []string
	s.mu.RLock()
	for _, z := range members {
		key, _ := z.Member.(string)
		if rec := s.agents[key]; rec == nil || rec.Received.UnixMilli() != int64(z.Score) {
			stale = append(stale, key)
		}
	}
	s.mu.RUnlock()
	fetched := map[string]*agentRecord{}
	for i := 0; i < len(stale); i += fetchChunk {
		chunk := stale[i:min(i+fetchChunk, len(stale))]
		pipe := c.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for j, key := range chunk {
			cmds[j] = pipe.HMGet(ctx, r.agentKey(key), "rec", "size", "ver")
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return unavailable(err)
		}
		for j, key := range chunk {
			v := cmds[j].Val()
			if len(v) != 3 {
				continue
			}
			rec, ver := decodeRecord(v[0], nil, v[1], v[2])
			if rec == nil || recordKey(rec.Report.Tenant, rec.Report.AgentID) != key {
				continue // deleted meanwhile, or not a record this origin can show
			}
			rec.ver = ver
			fetched[key] = rec
		}
	}
	s.mu.Lock()
	for key, rec := range fetched {
		old := s.agents[key]
		if old != nil && old.gen > gen0 {
			continue // this origin wrote it after the sync began
		}
		if old == nil && len(s.agents) >= s.cfg.MaxAgents {
			continue // another origin's budgets are larger than this one's memory bound
		}
		s.setLocked(key, old, rec) // gen 0: the next sync may replace it
	}
	if full {
		in := make(map[string]bool, len(members))
		for _, z := range members {
			key, _ := z.Member.(string)
			in[key] = true
		}
		for key, rec := range s.agents {
			if !in[key] && rec.gen <= gen0 {
				s.dropLocked(key)
			}
		}
		r.lastFull = now
	} else if card != int64(len(s.agents)) {
		r.lastFull = time.Time{} // something was deleted or skipped: read it all next time
	}
	for _, z := range members {
		r.mark = max(r.mark, int64(z.Score))
	}
	s.mu.Unlock()
	return nil
}

// checkEpoch notices a Redis that lost the records (restarted without
// persistence, flushed): its epoch is gone or another one. This origin
// then writes its copy back (heal) before adopting the new epoch, so
// that a Redis restart loses the agents' history but not their latest
// reports. Every origin does so; a record another one wrote back first
// is left as it is.
func (r *redisStore) checkEpoch(ctx context.Context) error {
	c := r.rdb.Client
	ep, err := c.Get(ctx, r.epochKey()).Result()
	if err != nil && err != redis.Nil {
		return unavailable(err)
	}
	if ep != "" && ep == r.epoch {
		return nil
	}
	if r.epoch != "" {
		if err := r.heal(ctx); err != nil {
			return err
		}
	}
	var b [8]byte
	rand.Read(b[:])
	if err := c.SetNX(ctx, r.epochKey(), hex.EncodeToString(b[:]), 0).Err(); err != nil {
		return unavailable(err)
	}
	if ep, err = c.Get(ctx, r.epochKey()).Result(); err != nil {
		return unavailable(err)
	}
	r.epoch = ep
	r.lastFull = time.Time{}
	return nil
}

// heal writes this origin's copy of the records (without history) into
// a Redis that lost them, where no other writer has put one since.
func (r *redisStore) heal(ctx context.Context) error {
	s := r.s
	now := s.now()
	s.mu.RLock()
	recs := make(map[string]*agentRecord, len(s.agents))
	for key, rec := range s.agents {
		if now.Sub(rec.Received) <= s.cfg.Forget {
			recs[key] = rec
		}
	}
	s.mu.RUnlock()
	keys := make([]string, 0, len(recs))
	for key := range recs {
		keys = append(keys, key)
	}
	for i := 0; i < len(keys); i += fetchChunk {
		pipe := r.rdb.Client.Pipeline()
		for _, key := range keys[i:min(i+fetchChunk, len(keys))] {
			head := *recs[key]
			head.History = nil
			headJSON, err := json.Marshal(&head)
			if err != nil {
				continue
			}
			putScript.Eval(ctx, pipe, []string{r.agentKey(key), r.indexKey(), r.useKey()},
				key, 0, headJSON, "[]", len(headJSON), head.Received.UnixMilli(), head.Report.Tenant,
				s.cfg.MaxAgents, s.cfg.MaxAgentsPerTenant, s.cfg.MaxTenantBytes, s.cfg.MaxBytes, head.Received.Add(-s.cfg.Forget).UnixMilli())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return unavailable(err)
		}
	}
	s.log.Info("agent reports: the shared state lost its records; wrote this origin's copy back (history is lost)", "agents", len(keys))
	return nil
}

func (r *redisStore) close() error { return nil }

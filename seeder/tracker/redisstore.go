package tracker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
	"unique"

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/internal/state"
)

// Swarms shared by several origins through Redis.
//
// Keys of the (tenant, infohash) swarm, the infohash in braces so a
// Redis Cluster keeps one release's keys on one node:
//
//	PREFIX:sw:{IH}:TENANT:p  hash    peer ID -> packed peer (encodePeer)
//	PREFIX:sw:{IH}:TENANT:z  zset    peer ID, score = expiry (unix ms)
//	PREFIX:sw:{IH}:TENANT:r  hash    peer ID -> reported peer IDs (trust.go)
//	PREFIX:sw:{IH}:TENANT:m  hash    v = version, d = completed downloads
//	PREFIX:sw:{IH}:tenants   set     tenants with a swarm of IH (Peers)
//	PREFIX:tracker:epoch     string  random, set once; gone = Redis lost its data
//
// All four swarm keys expire 2*PeerTTL after the swarm's last announce, so
// dead swarms vanish without a sweep. An announce is one EVALSHA (putScript):
// it drops expired peers, checks the peer ID's owner, stores the peer and
// bumps the version when membership or seed state changed. Each origin
// answers from its copy of the swarm in its shards, re-read (loadScript,
// one round trip) when an announce reveals a version it has not seen, or
// when the copy is older than shared_view_age. Elections are computed from
// the copy by the same rule on every origin (oldest agent, lowest ID on a
// tie, joined times kept in Redis), so origins with the same copy elect the
// same gateways.
//
// The caps (limits.go) count the peers in this origin's copies: peers that
// other origins admitted count once this origin has re-read their swarm,
// and a burst spread over several origins can overshoot a cap by what the
// other origins admitted within shared_view_age.
type redisStore struct {
	t      *Tracker
	r      *state.Redis
	client *redis.Client

	puts    *putBatcher
	mu      sync.Mutex
	epoch   string // the epoch this origin's copies belong to
	restore sync.Mutex
}

// Packed peer layout (big endian). The owner part (from ownerOff) is what a
// peer ID is bound to; the Lua scripts compare it as an opaque string.
const (
	offJoined = 0  // int64 ns, kept by Redis across re-announces
	offFlags  = 8  // bit 0: seeder (left == 0)
	offSeen   = 9  // int64 ns
	offLeft   = 17 // int64
	offPort   = 25 // uint16
	ownerOff  = 27 // role, len+ip, len+token hash, len+site, len+region
)

const flagSeeder = 1

// putScript: KEYS p z r m epoch tenants; ARGV id now_ms expiry_ms body
// owner joined event ttl_ms tenant gc_every_ms. body is the packed peer
// from offFlags to ownerOff. Returns {status, version, bumped, joined,
// epoch}; status 1 = the ID is bound to a live peer of another owner.
//
// A re-announce that changes nothing but the time costs six commands.
// Dropping expired peers and renewing the keys' expiry (maintenance) runs
// once per gc_every per swarm, and expiry is renewed at every membership
// change, so keys that a change re-creates never live without one.
var putScript = redis.NewScript(`
local p, z, r, m, ek = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, exp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local body, owner, joined, ev, ttl = ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local bump = 0
local meta = redis.call('HMGET', m, 'v', 'g')
local v = tonumber(meta[1] or '0')
local maint = now >= tonumber(meta[2] or '0')
if maint then
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. now, 'LIMIT', 0, 256)
  if #dead > 0 then
    redis.call('HDEL', p, unpack(dead))
    redis.call('HDEL', r, unpack(dead))
    redis.call('ZREM', z, unpack(dead))
    bump = 1
  end
end
local old = redis.call('HGET', p, id)
if old then
  local sc = tonumber(redis.call('ZSCORE', z, id))
  local live = sc ~= nil and sc >= now
  if string.sub(old, 28) ~= owner then
    if live then
      return {1, 0, 0, '', redis.call('GET', ek) or ''}
    end
    redis.call('HDEL', r, id)
    old = false
  elseif not live then
    old = false
  end
end
if ev == 's' then
  if old then
    redis.call('HDEL', p, id)
    redis.call('HDEL', r, id)
    redis.call('ZREM', z, id)
    bump = 1
  end
else
  if old then
    joined = string.sub(old, 1, 8)
    if string.byte(old, 9) ~= string.byte(body, 1) then bump = 1 end
  else
    bump = 1
  end
  redis.call('HSET', p, id, joined .. body .. owner)
  redis.call('ZADD', z, exp, id)
  if ev == 'c' then redis.call('HINCRBY', m, 'd', 1) end
end
if bump == 1 then
  v = redis.call('HINCRBY', m, 'v', 1)
  redis.call('SADD', KEYS[6], ARGV[9])
end
if maint then
  redis.call('HSET', m, 'g', now + tonumber(ARGV[10]))
  redis.call('PEXPIRE', r, ttl)
end
if maint or bump == 1 then
  redis.call('PEXPIRE', p, ttl)
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', m, ttl)
  redis.call('PEXPIRE', KEYS[6], ttl)
end
return {0, v, bump, joined, redis.call('GET', ek) or ''}
`)

// loadScript: KEYS p r m epoch; ARGV known version. Returns {version,
// epoch} if the version is the known one, else {version, epoch,
// downloaded, peers, reports}, peers and reports as flat field/value
// lists. Expired peers are dropped by the reader (their seen time is in
// the value). The epoch tells an empty swarm from a Redis that lost it.
var loadScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[3], 'v') or '0')
local ep = redis.call('GET', KEYS[4]) or ''
if v == tonumber(ARGV[1]) then return {v, ep} end
local d = tonumber(redis.call('HGET', KEYS[3], 'd') or '0')
return {v, ep, d, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
`)

// reportScript: KEYS p z r m; ARGV id now_ms owner ids ttl_ms. Returns
// {status, version, bumped}: status 0 stored, 1 bound to another owner,
// 2 no live peer with this ID.
var reportScript = redis.NewScript(`
local p, z, r, m = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, owner, ids, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local old = redis.call('HGET', p, id)
local sc = tonumber(redis.call('ZSCORE', z, id))
if not old or sc == nil or sc < now then return {2, 0, 0} end
if string.sub(old, 28) ~= owner then return {1, 0, 0} end
local bump = 0
if redis.call('HGET', r, id) ~= ids then
  redis.call('HSET', r, id, ids)
  redis.call('PEXPIRE', r, ttl)
  bump = 1
end
local v
if bump == 1 then
  v = redis.call('HINCRBY', m, 'v', 1)
else
  v = tonumber(redis.call('HGET', m, 'v') or '0')
end
return {0, v, bump}
`)

// restoreScript: KEYS p z m tenants; ARGV ttl_ms downloaded tenant then
// (id, value, expiry_ms) triples. Writes back peers Redis does not have (after it lost
// its data) and bumps the version so other origins re-read.
var restoreScript = redis.NewScript(`
local p, z, m = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[1])
redis.call('HSETNX', m, 'd', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ttl)
for i = 4, #ARGV, 3 do
  if redis.call('HSETNX', p, ARGV[i], ARGV[i+1]) == 1 then
    redis.call('ZADD', z, ARGV[i+2], ARGV[i])
  end
end
redis.call('HINCRBY', m, 'v', 1)
redis.call('PEXPIRE', p, ttl)
redis.call('PEXPIRE', z, ttl)
redis.call('PEXPIRE', m, ttl)
return 1
`)

// NewShared returns a tracker whose swarms live in r, shared with every
// origin using the same Redis and prefix. The caller keeps r and closes it
// after the tracker's last request.
func NewShared(ctx context.Context, cfg Config, r *state.Redis) (*Tracker, error) {
	t := New(cfg)
	if err := t.Share(ctx, r); err != nil {
		return nil, err
	}
	return t, nil
}

// Share moves a tracker that has not served yet onto the shared state r
// (see NewShared).
func (t *Tracker) Share(ctx context.Context, r *state.Redis) error {
	s := &redisStore{t: t, r: r, client: r.Client}
	ep, err := s.ensureEpoch(ctx)
	if err != nil {
		return err
	}
	s.epoch = ep
	s.puts = newPutBatcher(r.Client)
	t.store = s
	return nil
}

// Close stops what a shared tracker runs in the background (its Redis
// pipelines); requests after it are refused. The caller closes the Redis
// client afterwards. A tracker in memory has nothing to stop.
func (t *Tracker) Close() {
	if s, ok := t.store.(*redisStore); ok {
		s.puts.close()
	}
}

func (s *redisStore) epochKey() string { return s.r.Key("tracker", "epoch") }

// ensureEpoch sets the epoch if Redis has none and returns the one in force.
func (s *redisStore) ensureEpoch(ctx context.Context) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if err := s.client.SetNX(ctx, s.epochKey(), hex.EncodeToString(b[:]), 0).Err(); err != nil {
		return "", fmt.Errorf("%w: tracker epoch: %w", state.ErrUnavailable, err)
	}
	ep, err := s.client.Get(ctx, s.epochKey()).Result()
	if err != nil {
		return "", fmt.Errorf("%w: tracker epoch: %w", state.ErrUnavailable, err)
	}
	return ep, nil
}

func (s *redisStore) keys(infoHash [20]byte, tenant string) (p, z, r, m string) {
	base := s.r.Key("sw", "{"+hex.EncodeToString(infoHash[:])+"}", tenant)
	return base + ":p", base + ":z", base + ":r", base + ":m"
}

func (s *redisStore) tenantsKey(infoHash [20]byte) string {
	return s.r.Key("sw", "{"+hex.EncodeToString(infoHash[:])+"}", "tenants")
}

// tenants lists the tenants with a swarm of infoHash in Redis. The set
// may name swarms that have expired since; they read as empty.
func (s *redisStore) tenants(ctx context.Context, infoHash [20]byte) ([]string, error) {
	ts, err := s.client.SMembers(ctx, s.tenantsKey(infoHash)).Result()
	if err != nil {
		s.t.m.stateErrors.Inc()
		return nil, unavailable(err)
	}
	return ts, nil
}

func (s *redisStore) ttl() int64 { return 2 * s.t.cfg.PeerTTL.Milliseconds() }

// gcEvery is how often (ms) an announce also drops a swarm's expired
// peers from Redis and renews its keys' expiry. Until then expired peers
// stay in Redis but are given out by no origin (readers check the time).
func (s *redisStore) gcEvery() int64 { return max(1000, s.t.cfg.PeerTTL.Milliseconds()/8) }

func unavailable(err error) error { return fmt.Errorf("%w: %w", state.ErrUnavailable, err) }

func (s *redisStore) currentEpoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

func (s *redisStore) put(ctx context.Context, infoHash [20]byte, tenant string, e *entry, stopped, completed bool, cutoff int64) (string, error) {
	t := s.t
	sh := t.shard(infoHash)
	// This origin's copy first: it holds the caps, and refuses a hijack
	// it can see without a round trip.
	if stopped {
		if err := t.remove(sh, infoHash, tenant, e); err != nil {
			return reasonPeerID, err
		}
	} else if reason, err := t.upsert(sh, infoHash, tenant, e, completed, cutoff); err != nil {
		return reason, err
	}
	ev := ""
	switch {
	case stopped:
		ev = "s"
	case completed:
		ev = "c"
	}
	val := encodePeer(e)
	var joined [8]byte
	binary.BigEndian.PutUint64(joined[:], uint64(e.seen))
	p, z, r, m := s.keys(infoHash, tenant)
	epoch := s.currentEpoch()
	nowMs := e.seen / 1e6
	res, err := s.puts.run(ctx, []string{p, z, r, m, s.epochKey(), s.tenantsKey(infoHash)},
		string(e.id[:]), nowMs, nowMs+t.cfg.PeerTTL.Milliseconds(),
		val[offFlags:ownerOff], val[ownerOff:], joined[:], ev, s.ttl(), tenant, s.gcEvery())
	if err == nil && len(res) != 5 {
		err = fmt.Errorf("put script answered %d values", len(res))
	}
	if err != nil {
		s.stale(infoHash, tenant)
		t.m.stateErrors.Inc()
		return reasonState, unavailable(err)
	}
	status, _ := res[0].(int64)
	version, _ := res[1].(int64)
	bumped, _ := res[2].(int64)
	joinedB, _ := res[3].(string)
	ep, _ := res[4].(string)
	if ep != epoch {
		s.lost(ctx, epoch)
	}
	if status == 1 {
		s.stale(infoHash, tenant) // our copy let through what another origin holds
		return reasonPeerID, errPeerIDBound
	}
	sh.mu.Lock()
	if sw := sh.byHash[infoHash][tenant]; sw != nil {
		i, ok := sw.index[e.id]
		if ok && len(joinedB) == 8 {
			sw.peers[i].joined = int64(binary.BigEndian.Uint64([]byte(joinedB)))
		}
		s.track(sw, version, bumped == 1)
		if ok == stopped { // a re-read since our local change lost it
			sw.stale = true
		}
	}
	sh.mu.Unlock()
	return "", nil
}

// track notes the version an operation on the swarm returned: if it was
// this origin's own change on top of the copy's version, the copy (which
// applied the change) is current; any other new version means another
// origin changed the swarm. Callers hold the shard lock.
func (s *redisStore) track(sw *swarm, version int64, bumped bool) {
	switch {
	case bumped && sw.version == version-1:
		sw.version = version
		sw.verified = time.Now()
	case sw.version == version && !bumped:
		sw.verified = time.Now()
	default:
		sw.stale = true
	}
}

// stale marks a copy to be re-read before the next answer.
func (s *redisStore) stale(infoHash [20]byte, tenant string) {
	sh := s.t.shard(infoHash)
	sh.mu.Lock()
	if sw := sh.byHash[infoHash][tenant]; sw != nil {
		sw.stale = true
	}
	sh.mu.Unlock()
}

func (s *redisStore) report(ctx context.Context, infoHash [20]byte, tenant string, reporter *entry, ids [][20]byte, cutoff int64) (bool, error) {
	if reporter.role != roleAgent {
		return false, nil
	}
	val := encodePeer(reporter)
	blob := make([]byte, 0, len(ids)*20)
	for _, id := range ids {
		blob = append(blob, id[:]...)
	}
	p, z, r, m := s.keys(infoHash, tenant)
	res, err := reportScript.Run(ctx, s.client, []string{p, z, r, m},
		string(reporter.id[:]), s.t.now().UnixMilli(), val[ownerOff:], blob, s.ttl()).Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("report script answered %d values", len(res))
	}
	if err != nil {
		s.t.m.stateErrors.Inc()
		return false, unavailable(err)
	}
	status, _ := res[0].(int64)
	switch status {
	case 1:
		return false, errPeerIDBound
	case 2:
		return false, nil
	}
	version, _ := res[1].(int64)
	bumped, _ := res[2].(int64)
	sh := s.t.shard(infoHash)
	stored, _ := s.t.storeReport(sh, infoHash, tenant, reporter, ids, cutoff)
	sh.mu.Lock()
	if sw := sh.byHash[infoHash][tenant]; sw != nil {
		if !stored {
			sw.stale = true // the reporter is in Redis, not yet in our copy
		}
		s.track(sw, version, bumped == 1)
	}
	sh.mu.Unlock()
	return true, nil
}

// fresh re-reads the swarm when the copy is missing or stale, or when
// Redis has not confirmed its version for SharedViewAge (then a version
// check suffices, unless the copy's peers' last-announce times are older
// than fullRead). One request at a time re-reads a copy; the others answer
// from it meanwhile.
func (s *redisStore) fresh(ctx context.Context, infoHash [20]byte, tenant string) error {
	sh := s.t.shard(infoHash)
	wall := time.Now() // the copy's age is about other origins, not peer time
	fullRead := max(s.t.cfg.SharedViewAge, s.t.cfg.PeerTTL/4)
	current := func(sw *swarm) bool {
		return sw != nil && (sw.loading || (!sw.stale && wall.Sub(sw.verified) < s.t.cfg.SharedViewAge && wall.Sub(sw.loaded) < fullRead))
	}
	sh.mu.RLock()
	ok := current(sh.byHash[infoHash][tenant])
	sh.mu.RUnlock()
	if ok {
		return nil
	}
	sh.mu.Lock()
	sw := sh.byHash[infoHash][tenant]
	if current(sw) {
		sh.mu.Unlock()
		return nil
	}
	known := int64(-1) // version to check against; -1: read it all
	if sw != nil {
		sw.loading = true
		if !sw.stale && wall.Sub(sw.loaded) < fullRead {
			known = sw.version
		}
	}
	sh.mu.Unlock()

	done := func(verified bool) {
		sh.mu.Lock()
		if sw := sh.byHash[infoHash][tenant]; sw != nil {
			sw.loading = false
			if verified && sw.version == known {
				sw.verified = wall
			}
		}
		sh.mu.Unlock()
	}
	p, _, r, m := s.keys(infoHash, tenant)
	epoch := s.currentEpoch()
	res, err := loadScript.Run(ctx, s.client, []string{p, r, m, s.epochKey()}, known).Slice()
	if err == nil && len(res) != 5 && len(res) != 2 {
		err = fmt.Errorf("load script answered %d values", len(res))
	}
	if err != nil {
		done(false)
		s.t.m.stateErrors.Inc()
		return unavailable(err)
	}
	if ep, _ := res[1].(string); ep != epoch {
		// Redis lost its data (or another origin has just refilled it):
		// an empty read must not replace the copy, which is what refills
		// it. The next read after the write-back is whole again.
		done(false)
		s.lost(ctx, epoch)
		return nil
	}
	if len(res) == 2 { // the version is still the copy's
		done(true)
		return nil
	}
	version, _ := res[0].(int64)
	downloaded, _ := res[2].(int64)
	peerKV, _ := res[3].([]any)
	repKV, _ := res[4].([]any)
	cutoff := s.t.cutoff()
	peers := make([]entry, 0, len(peerKV)/2)
	for i := 0; i+1 < len(peerKV); i += 2 {
		id, _ := peerKV[i].(string)
		val, _ := peerKV[i+1].(string)
		e, ok := decodePeer(id, val)
		if !ok {
			s.t.log.Warn("tracker: undecodable peer in shared state", "key", p)
			continue
		}
		if e.seen >= cutoff {
			peers = append(peers, e)
		}
	}
	var reports map[[20]byte][][20]byte
	for i := 0; i+1 < len(repKV); i += 2 {
		id, _ := repKV[i].(string)
		blob, _ := repKV[i+1].(string)
		if len(id) != 20 || len(blob)%20 != 0 || len(blob) > maxReport*20 {
			continue
		}
		if reports == nil {
			reports = make(map[[20]byte][][20]byte)
		}
		var k [20]byte
		copy(k[:], id)
		ids := make([][20]byte, len(blob)/20)
		for j := range ids {
			copy(ids[j][:], blob[j*20:])
		}
		reports[k] = ids
	}
	sh.mu.Lock()
	s.replace(sh, infoHash, tenant, peers, reports, downloaded, version, wall)
	sh.mu.Unlock()
	return nil
}

// replace swaps the copy of a swarm for what was read from Redis, moving
// the caps' counts from the old peers to the new. Callers hold sh.mu.
func (s *redisStore) replace(sh *shard, infoHash [20]byte, tenant string, peers []entry, reports map[[20]byte][][20]byte, downloaded, version int64, loaded time.Time) {
	t := s.t
	if old := sh.byHash[infoHash][tenant]; old != nil {
		for i := range old.peers {
			t.lim.release(infoHash, tenant, old.peers[i].addr.Addr(), old.peers[i].tok)
		}
		sh.active[tenant] -= len(old.peers)
	}
	if len(peers) == 0 {
		if tenants := sh.byHash[infoHash]; tenants != nil {
			delete(tenants, tenant)
		}
		sh.dropIfEmpty(infoHash, tenant)
		return
	}
	sw := &swarm{peers: peers, index: make(map[[20]byte]int, len(peers)), downloaded: downloaded,
		reports: reports, version: version, loaded: loaded, verified: loaded}
	for i := range peers {
		sw.index[peers[i].id] = i
		t.lim.force(infoHash, tenant, peers[i].addr.Addr(), peers[i].tok)
	}
	tenants := sh.byHash[infoHash]
	if tenants == nil {
		tenants = make(map[string]*swarm, 1)
		sh.byHash[infoHash] = tenants
	}
	tenants[tenant] = sw
	sh.active[tenant] += len(peers)
}

// lost handles an announce that found no epoch, or another one than the
// copies were written under: Redis lost its data (restarted empty), or
// another origin already noticed and set a new epoch. Either way this
// origin writes its copies back, once per epoch: a late answer carrying
// the epoch from before a restore this origin already made (seen is then
// no longer current) changes nothing.
func (s *redisStore) lost(ctx context.Context, seen string) {
	s.restore.Lock()
	defer s.restore.Unlock()
	if s.currentEpoch() != seen {
		return // handled by an earlier call
	}
	ep, err := s.ensureEpoch(ctx)
	if err != nil {
		return // Redis away again: the next announce tries again
	}
	s.mu.Lock()
	s.epoch = ep
	s.mu.Unlock()
	n, err := s.writeBack(ctx)
	s.t.m.stateRestores.Inc()
	s.t.log.Warn("tracker: shared state lost its swarms (Redis restarted empty?); wrote back this origin's copies",
		"swarms", n, "err", err)
}

// writeBack stores every live peer of this origin's copies that Redis
// does not have, one script call per swarm.
func (s *redisStore) writeBack(ctx context.Context) (int, error) {
	t := s.t
	cutoff := t.cutoff()
	type job struct {
		ih      [20]byte
		tenant  string
		args    []any
		reports []any
	}
	var jobs []job
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ih, tenants := range sh.byHash {
			for tenant, sw := range tenants {
				sw.stale = true
				args := []any{s.ttl(), sw.downloaded, tenant}
				for j := range sw.peers {
					e := &sw.peers[j]
					if e.seen < cutoff {
						continue
					}
					args = append(args, string(e.id[:]), encodePeer(e), (e.seen+int64(t.cfg.PeerTTL))/1e6)
				}
				var reports []any
				for id, ids := range sw.reports {
					if _, live := sw.index[id]; !live {
						continue
					}
					blob := make([]byte, 0, len(ids)*20)
					for _, r := range ids {
						blob = append(blob, r[:]...)
					}
					if reports == nil {
						reports = []any{s.ttl()}
					}
					reports = append(reports, string(id[:]), blob)
				}
				jobs = append(jobs, job{ih, tenant, args, reports})
			}
		}
		sh.mu.Unlock()
	}
	var errs []error
	for _, j := range jobs {
		p, z, r, m := s.keys(j.ih, j.tenant)
		if err := restoreScript.Run(ctx, s.client, []string{p, z, m, s.tenantsKey(j.ih)}, j.args...).Err(); err != nil {
			errs = append(errs, err)
		}
		if j.reports != nil {
			if err := restoreReportsScript.Run(ctx, s.client, []string{r, m}, j.reports...).Err(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return len(jobs), errors.Join(errs...)
}

// restoreReportsScript: KEYS r m; ARGV ttl_ms then (id, reported ids)
// pairs. Writes back connection reports Redis does not have, so that the
// agents' trust (trust.go) survives a Redis that lost its data.
var restoreReportsScript = redis.NewScript(`
for i = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[2], 'v', 1)
return 1
`)

// encodePeer packs e as stored in Redis (see the offsets above).
func encodePeer(e *entry) []byte {
	b := make([]byte, ownerOff, ownerOff+64)
	binary.BigEndian.PutUint64(b[offJoined:], uint64(e.joined))
	if e.left == 0 {
		b[offFlags] = flagSeeder
	}
	binary.BigEndian.PutUint64(b[offSeen:], uint64(e.seen))
	binary.BigEndian.PutUint64(b[offLeft:], uint64(e.left))
	binary.BigEndian.PutUint16(b[offPort:], e.addr.Port())
	b = append(b, e.role)
	ip := e.addr.Addr().AsSlice()
	b = append(b, byte(len(ip)))
	b = append(b, ip...)
	for _, s := range []string{e.tok.Value(), e.site.Value(), e.region.Value()} {
		b = append(b, byte(len(s))) // identities are at most 128 bytes (parse.go)
		b = append(b, s...)
	}
	return b
}

// decodePeer unpacks a stored peer; ok is false for a malformed value.
func decodePeer(id, v string) (e entry, ok bool) {
	if len(id) != 20 || len(v) < ownerOff+2 {
		return e, false
	}
	copy(e.id[:], id)
	b := []byte(v)
	e.joined = int64(binary.BigEndian.Uint64(b[offJoined:]))
	e.seen = int64(binary.BigEndian.Uint64(b[offSeen:]))
	e.left = int64(binary.BigEndian.Uint64(b[offLeft:]))
	port := binary.BigEndian.Uint16(b[offPort:])
	e.role = b[ownerOff]
	rest := b[ownerOff+1:]
	var parts [4][]byte
	for i := range parts {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return e, false
		}
		n := int(rest[0])
		parts[i], rest = rest[1:1+n], rest[1+n:]
	}
	ip, okIP := netip.AddrFromSlice(parts[0])
	if !okIP || len(rest) != 0 || int(e.role) >= len(roleNames) {
		return e, false
	}
	e.addr = netip.AddrPortFrom(ip, port)
	e.tok = unique.Make(string(parts[1]))
	e.site = unique.Make(string(parts[2]))
	e.region = unique.Make(string(parts[3]))
	return e, true
}

// force counts a peer another origin admitted (read from shared state)
// without checking the caps: it is stored already.
func (l *limits) force(infoHash [20]byte, tenant string, addr netip.Addr, tok unique.Handle[string]) {
	k := swarmKey{infoHash, tenant}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.addrs[addr]
	if u == nil {
		u = usage{}
		l.addrs[addr] = u
	}
	u[k]++
	if tok != noToken {
		tu := l.toks[tok]
		if tu == nil {
			tu = usage{}
			l.toks[tok] = tu
		}
		tu[k]++
	}
	l.total++
}

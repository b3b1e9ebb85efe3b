package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
)

// Per-identity report rate and the bound on report requests decoded at
// once (each may hold report.MaxBody bytes).
const (
	identityRate    = 5.0
	identityBurst   = 10.0
	maxDecoding     = 4
	maxAddrLimiters = 10000
	storedTextLen   = 256 // free text kept per field
	storedNameLen   = 64
)

// interval is the agent's report interval, capped by the origin.
func (s *Reports) interval(r *agentRecord) time.Duration {
	return min(time.Duration(r.Report.IntervalSeconds*float64(time.Second)), s.cfg.MaxInterval)
}

// recordKey names an agent's record: agent ids are only unique within a
// tenant, and a tenant's agents can never touch another tenant's records.
func recordKey(tenant, agentID string) string { return tenant + "/" + agentID }

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// tenantUse is what one tenant's records take.
type tenantUse struct {
	agents int
	bytes  int64
}

// account adds size bytes and n agents to a tenant's use. s.mu is held
// (or the store is not shared yet).
func (s *Reports) account(tenant string, size, n int) {
	u := s.perTenant[tenant]
	if u == nil {
		u = &tenantUse{}
		s.perTenant[tenant] = u
	}
	u.agents += n
	u.bytes += int64(size)
	s.totalBytes += int64(size)
	if u.agents == 0 {
		delete(s.perTenant, tenant)
	}
}

// Refusals of the report bounds.
var (
	errTooManyAgents = errors.New("origin keeps no more agents; raise reports.max_agents or reports.max_agents_per_tenant")
	errReportsFull   = errors.New("origin keeps no more report data; raise reports.max_tenant_bytes or reports.max_bytes")
	errRecordTooBig  = errors.New("report is larger than reports.max_record_bytes once stored")
	errRateLimited   = errors.New("too many reports; slow down")
	errRecordBound   = errors.New("this agent id is bound to another site, address or token")
	errStoreAway     = errors.New("the origin cannot store reports now (its shared state does not answer); retry later")
	// errConflict: another writer replaced the record between read and write.
	errConflict = errors.New("the agent's record changed meanwhile; retry")
)

// admitLocked checks that a record of size bytes fits the budgets,
// replacing old (nil: a new agent).
func (s *Reports) admitLocked(tenant string, old *agentRecord, size int) error {
	u := s.perTenant[tenant]
	if u == nil {
		u = &tenantUse{}
	}
	oldSize := 0
	if old != nil {
		oldSize = old.size
	} else if len(s.agents) >= s.cfg.MaxAgents || u.agents >= s.cfg.MaxAgentsPerTenant {
		return errTooManyAgents
	}
	grow := int64(size - oldSize)
	if grow > 0 && (u.bytes+grow > s.cfg.MaxTenantBytes || s.totalBytes+grow > s.cfg.MaxBytes) {
		return errReportsFull
	}
	return nil
}

// codeFor maps an ingest refusal to its HTTP status.
func codeFor(err error) int {
	switch {
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, errRecordTooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errRecordBound):
		return http.StatusForbidden
	case errors.Is(err, errReportsFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusServiceUnavailable
}

// addrAllowed applies the per-address rate.
func (s *Reports) addrAllowed(addr string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.addrLim[addr]
	if b == nil {
		if len(s.addrLim) >= maxAddrLimiters {
			// Forget the buckets that have refilled: they hold no state.
			full := max(4*time.Second, time.Duration(float64(time.Second)*s.addrBurst()/s.cfg.RatePerAddress))
			for a, ob := range s.addrLim {
				if now.Sub(ob.last) > full {
					delete(s.addrLim, a)
				}
			}
			if len(s.addrLim) >= maxAddrLimiters {
				clear(s.addrLim)
			}
		}
		b = &bucket{}
		s.addrLim[addr] = b
	}
	return b.allow(now, s.cfg.RatePerAddress, s.addrBurst())
}

func (s *Reports) addrBurst() float64 { return max(50, 4*s.cfg.RatePerAddress) }

// compact trims what the origin keeps of a report's free text.
func compact(rep *report.Report) {
	t := func(p *string, n int) { *p = report.Trim(*p, n) }
	t(&rep.Name, storedNameLen)
	t(&rep.Catalog.URL, storedTextLen)
	t(&rep.Catalog.Error, storedTextLen)
	for i := range rep.Subscriptions {
		t(&rep.Subscriptions[i].Subscription, storedTextLen)
		t(&rep.Subscriptions[i].Reason, storedTextLen)
	}
	for i := range rep.Releases {
		t(&rep.Releases[i].LastError, storedTextLen)
		t(&rep.Releases[i].Reason, storedTextLen)
	}
}

func (s *Reports) handleReport(w http.ResponseWriter, r *http.Request) {
	addr := r.RemoteAddr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	if !s.addrAllowed(addr, s.now()) {
		s.rejected.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, errRateLimited.Error(), http.StatusTooManyRequests)
		return
	}
	select {
	case s.decoding <- struct{}{}:
		defer func() { <-s.decoding }()
	case <-r.Context().Done():
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.rejected.Add(1)
			http.Error(w, "reports are application/json", http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.ContentLength > report.MaxBody {
		s.rejected.Add(1)
		http.Error(w, fmt.Sprintf("report is larger than %d bytes", report.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	rep, err := report.Decode(http.MaxBytesReader(w, r.Body, report.MaxBody+1))
	if err != nil {
		s.rejected.Add(1)
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || strings.Contains(err.Error(), "larger than") {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), code)
		return
	}
	if code, err := s.authorize(r, rep); err != nil {
		s.rejected.Add(1)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="swarmship"`)
		}
		if ok, dropped := s.logRefusal(); ok {
			s.log.Warn("agent report refused", "agent", rep.AgentID, "site", rep.Site, "peer", r.RemoteAddr, "err", err, "unlogged_before", dropped)
		}
		http.Error(w, "token required: "+err.Error(), code)
		return
	}
	if err := s.ingestFrom(r.Context(), rep, addr); err != nil {
		s.rejected.Add(1)
		if ok, dropped := s.logRefusal(); ok {
			s.log.Warn("agent report refused", "agent", rep.AgentID, "tenant", rep.Tenant, "site", rep.Site, "peer", r.RemoteAddr, "err", err, "unlogged_before", dropped)
		}
		code, msg := codeFor(err), err.Error()
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		if errors.Is(err, state.ErrUnavailable) {
			msg = errStoreAway.Error() // the cause names the origin's Redis: for the log only
		}
		http.Error(w, msg, code)
		return
	}
	s.accepted.Add(1)
	if s.origin.Answer != nil {
		if ans := s.origin.Answer(rep); ans != nil {
			writeJSON(w, ans)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ingest stores a validated report from inside the process.
func (s *Reports) ingest(rep *report.Report) error {
	return s.ingestFrom(context.Background(), rep, "")
}

// maxPutAttempts bounds the retries of a report whose record another
// writer (a report of the same agent at another origin) replaced meanwhile.
const maxPutAttempts = 3

// ingestFrom stores a validated report received from addr ("" from
// inside the process), within the rate and size bounds. A refused report
// changes nothing. The agent's record is read, the next one built from it
// and put back only if nobody replaced it meanwhile.
func (s *Reports) ingestFrom(ctx context.Context, rep *report.Report, addr string) error {
	compact(rep)
	key := recordKey(rep.Tenant, rep.AgentID)
	limited := false
	for attempt := 1; ; attempt++ {
		now := s.now()
		prev, err := s.store.get(ctx, key)
		if err != nil {
			return err
		}
		base := prev
		if base != nil && now.Sub(base.Received) > s.cfg.Forget {
			base = nil // forgotten: the agent starts afresh
		}
		if base != nil {
			if err := s.checkBound(base, rep, addr, now); err != nil {
				return err
			}
			if addr != "" && !limited {
				if !s.identityAllowed(key, now) {
					return errRateLimited
				}
				limited = true
			}
		}
		rec, blob, err := s.build(base, rep, addr, now)
		if err != nil {
			return err
		}
		err = s.store.put(ctx, key, prev, rec, blob)
		if errors.Is(err, errConflict) && attempt < maxPutAttempts {
			continue
		}
		return err
	}
}

// checkBound refuses a report that would move a known agent to another
// site, or (without tokens) take over a live agent's id from another
// address.
func (s *Reports) checkBound(old *agentRecord, rep *report.Report, addr string, now time.Time) error {
	live := now.Sub(old.Received) <= time.Duration(s.cfg.StallIntervals)*s.interval(old)
	switch {
	case old.Report.Site != rep.Site:
		// A site moves only after its old record is forgotten.
		return fmt.Errorf("%w: agent %s reports for site %q", errRecordBound, rep.AgentID, old.Report.Site)
	case !s.origin.Tokens && addr != "" && old.Addr != "" && old.Addr != addr && live:
		return fmt.Errorf("%w: agent %s reports from another address", errRecordBound, rep.AgentID)
	}
	return nil
}

// identityAllowed applies the per-identity rate to a known agent. The
// buckets live with this origin's copy of the records: with several
// origins each applies the rate on its own.
func (s *Reports) identityAllowed(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.agents[key]
	return rec == nil || rec.lim.allow(now, identityRate, identityBurst)
}

// build makes an agent's next record from its current one (old, nil for
// a new agent) and a report, with its JSON, cut to max_record_bytes.
func (s *Reports) build(old *agentRecord, rep *report.Report, addr string, now time.Time) (*agentRecord, []byte, error) {
	rec := &agentRecord{FirstSeen: now, Progress: map[string]progressMark{}, Report: rep, Received: now, Addr: addr}
	if old != nil {
		rec.FirstSeen = old.FirstSeen
		if addr == "" {
			rec.Addr = old.Addr
		}
	}
	// Progress marks: a release moves when its bytes grow or its state changes.
	for k, st := range agentReleases(rep) {
		m := progressMark{State: st.state, Completed: st.completed, Since: now}
		if old != nil {
			if om, ok := old.Progress[k]; ok && om.State == m.State && m.Completed <= om.Completed {
				m = om
			}
		}
		rec.Progress[k] = m
	}
	h := historyEntry{Time: now, Releases: make([]historyItem, 0, len(rep.Releases))}
	for _, r := range rep.Releases {
		h.Releases = append(h.Releases, historyItem{Release: r.Key(), State: r.State, Completed: r.Completed, Downloaded: r.Downloaded, Uploaded: r.Uploaded})
	}
	if old != nil {
		rec.History = append(rec.History, old.History[max(0, len(old.History)+1-s.cfg.History):]...)
	}
	rec.History = append(rec.History, h)
	blob, err := json.Marshal(rec)
	// Over its byte cap a record loses history, oldest first.
	for err == nil && len(blob) > s.cfg.MaxRecordBytes && len(rec.History) > 1 {
		rec.History = rec.History[len(rec.History)/2:]
		blob, err = json.Marshal(rec)
	}
	if err == nil && len(blob) > s.cfg.MaxRecordBytes {
		err = fmt.Errorf("%w (%d bytes, at most %d)", errRecordTooBig, len(blob), s.cfg.MaxRecordBytes)
	}
	if err != nil {
		return nil, nil, err
	}
	rec.size = len(blob)
	return rec, blob, nil
}

// setLocked puts rec in this origin's table in place of old (nil: a new
// agent), keeping old's rate bucket. s.mu is held for writing.
func (s *Reports) setLocked(key string, old, rec *agentRecord) {
	if old != nil {
		rec.lim = old.lim
		s.account(rec.Report.Tenant, rec.size-old.size, 0)
	} else {
		s.account(rec.Report.Tenant, rec.size, 1)
	}
	s.agents[key] = rec
	for k := range rec.Progress {
		if _, ok := s.firstSeen[k]; !ok {
			s.firstSeen[k] = rec.Received
		}
	}
}

// dropLocked forgets a record in memory; s.mu is held.
func (s *Reports) dropLocked(key string) {
	if rec := s.agents[key]; rec != nil {
		s.account(rec.Report.Tenant, -rec.size, -1)
		delete(s.agents, key)
	}
}

// authorize admits a report by the origin's rules (all without them).
func (s *Reports) authorize(r *http.Request, rep *report.Report) (int, error) {
	if s.origin.Authorize == nil {
		return 0, nil
	}
	return s.origin.Authorize(r, rep)
}

// logRefusal says whether to log a refused report and how many refusals
// went unlogged before it.
func (s *Reports) logRefusal() (bool, int) {
	if s.origin.LogRefusal == nil {
		return true, 0
	}
	return s.origin.LogRefusal()
}

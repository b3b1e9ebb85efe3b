package seeder

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// The operators' quarantine list (issue 20): peers the tracker refuses
// and never hands out, and that agents drop and refuse (the list rides on
// the answer to their reports). Entries name a peer ID, an address, an
// agent ID or a peer certificate; agent IDs and certificates are mapped
// to the agent's current peer ID from its reports, so a quarantine
// survives the agent's restarts and never takes the other agents behind
// the same NAT address with it.
//
// Who may call: operators (GET), fleet operators or a tenant's operators
// for their tenant (POST, DELETE); addresses only by fleet operators (an
// address can be shared by tenants). Two at once: one mutex here, one
// Redis hash field per entry with shared state (the count bound can be
// passed by the origins racing, by a few). Killed midway: the file is
// replaced atomically. Bounded: report.MaxQuarantine entries, 4 KiB per
// request.

// QuarantineEntry is one quarantined peer.
type QuarantineEntry struct {
	Entry  string    `json:"entry"`
	Tenant string    `json:"tenant,omitempty"` // "": every tenant (fleet operators only)
	Reason string    `json:"reason,omitempty"`
	Added  time.Time `json:"added"`
	// Applied is set in listings: the peer ID an agent or certificate
	// entry maps to now ("" when no live agent reports it).
	Applied string `json:"applied,omitempty"`
}

const (
	// QuarantinePath is the quarantine API.
	QuarantinePath       = "/api/v1/quarantine"
	maxQuarantineReason  = 256
	maxQuarantineRequest = 4 << 10
	quarantineFile       = "quarantine.json"
)

var errQuarantineFull = fmt.Errorf("the quarantine list holds %d entries: remove some first", report.MaxQuarantine)

type quarantineList struct {
	mu      sync.Mutex
	entries map[string]QuarantineEntry // by tenant + "|" + entry
	path    string                     // "" : memory only
	rdb     *state.Redis               // nil: this origin only
	// answers is what agents get, per tenant ("" entries go to all).
	answers atomic.Pointer[map[string][]string]
	applied string // signature of the last list given to the tracker
}

func quarantineKey(e QuarantineEntry) string { return e.Tenant + "|" + e.Entry }

// openQuarantine reads the list from cacheDir (if set); with shared state
// the list lives in Redis instead.
func openQuarantine(cacheDir string, rdb *state.Redis) (*quarantineList, error) {
	q := &quarantineList{entries: map[string]QuarantineEntry{}, rdb: rdb}
	if rdb != nil || cacheDir == "" {
		return q, nil
	}
	q.path = filepath.Join(cacheDir, quarantineFile)
	b, err := os.ReadFile(q.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return q, nil
	case err != nil:
		return nil, fmt.Errorf("quarantine list %s: %w", q.path, err)
	}
	var list []QuarantineEntry
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("quarantine list %s: %w (fix or remove the file)", q.path, err)
	}
	for _, e := range list {
		if c, err := report.ParseQuarantine(e.Entry); err == nil && len(q.entries) < report.MaxQuarantine {
			e.Entry = c
			q.entries[quarantineKey(e)] = e
		}
	}
	return q, nil
}

func (q *quarantineList) redisKey() string { return q.rdb.Key("quarantine") }

// list returns every entry, reading Redis with shared state.
func (q *quarantineList) list(ctx context.Context) ([]QuarantineEntry, error) {
	if q.rdb != nil {
		m, err := q.rdb.Client.HGetAll(ctx, q.redisKey()).Result()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		q.mu.Lock()
		clear(q.entries)
		for k, v := range m {
			var e QuarantineEntry
			if json.Unmarshal([]byte(v), &e) == nil && len(q.entries) < report.MaxQuarantine {
				q.entries[k] = e
			}
		}
		q.mu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]QuarantineEntry, 0, len(q.entries))
	for _, e := range q.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b QuarantineEntry) int { return strings.Compare(quarantineKey(a), quarantineKey(b)) })
	return out, nil
}

func (q *quarantineList) add(ctx context.Context, e QuarantineEntry) error {
	b, _ := json.Marshal(e)
	if q.rdb != nil {
		n, err := q.rdb.Client.HLen(ctx, q.redisKey()).Result()
		if err != nil {
			return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		if n >= report.MaxQuarantine {
			return errQuarantineFull
		}
		if err := q.rdb.Client.HSet(ctx, q.redisKey(), quarantineKey(e), b).Err(); err != nil {
			return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.entries[quarantineKey(e)]; !ok && len(q.entries) >= report.MaxQuarantine {
		return errQuarantineFull
	}
	q.entries[quarantineKey(e)] = e
	return q.saveLocked()
}

func (q *quarantineList) remove(ctx context.Context, tenant, entry string) (bool, error) {
	key := quarantineKey(QuarantineEntry{Tenant: tenant, Entry: entry})
	if q.rdb != nil {
		n, err := q.rdb.Client.HDel(ctx, q.redisKey(), key).Result()
		if err != nil {
			return false, fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		return n > 0, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.entries[key]; !ok {
		return false, nil
	}
	delete(q.entries, key)
	return true, q.saveLocked()
}

// saveLocked replaces the file atomically: a crash leaves the old list or
// the new one.
func (q *quarantineList) saveLocked() error {
	if q.path == "" {
		return nil
	}
	list := make([]QuarantineEntry, 0, len(q.entries))
	for _, e := range q.entries {
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b QuarantineEntry) int { return strings.Compare(quarantineKey(a), quarantineKey(b)) })
	b, err := json.MarshalIndent(list, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(q.path), quarantineFile+".*")
	if err != nil {
		return fmt.Errorf("quarantine list: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), q.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("quarantine list: %w", err)
	}
	return nil
}

// applyQuarantine maps the list onto peer IDs and addresses, gives it to
// the tracker (when it changed) and keeps the agents' answers; it also
// hands the tracker the agents' weights. The report loop runs it every
// tick; a shared state that does not answer keeps the last list.
func (o *Origin) applyQuarantine(ctx context.Context) {
	o.tracker.SetWeights(o.reports.Weights())
	o.tracker.SetSlow(o.reports.Slow())
	entries, err := o.quarantine.list(ctx)
	if err != nil {
		return
	}
	tq := &tracker.Quarantine{IDs: map[[20]byte]bool{}, TenantIDs: map[string]map[[20]byte]bool{}, IPs: map[netip.Addr]bool{}, Addrs: map[netip.AddrPort]bool{}}
	answers := map[string][]string{}
	var sig strings.Builder
	for _, e := range entries {
		kind, v, _ := strings.Cut(e.Entry, ":")
		var out string
		switch kind {
		case report.QuarantinePeer:
			out = e.Entry
		case report.QuarantineAddr:
			if ap, err := netip.ParseAddrPort(v); err == nil {
				tq.Addrs[ap] = true
			} else if ip, err := netip.ParseAddr(v); err == nil {
				tq.IPs[ip] = true
			}
			out = e.Entry
		case report.QuarantineAgent, report.QuarantineTLS:
			if id, ok := o.reports.PeerIDOf(e.Tenant, kind, v); ok {
				out = report.QuarantinePeer + ":" + hex.EncodeToString(id[:])
			}
		}
		if kind, v, ok := strings.Cut(out, ":"); ok && kind == report.QuarantinePeer {
			var id [20]byte
			if b, err := hex.DecodeString(v); err == nil && len(b) == 20 {
				copy(id[:], b)
				// A tenant's entry holds in that tenant's swarms only:
				// peer IDs are chosen by clients, so another tenant's
				// agent may carry the same one.
				if e.Tenant == "" {
					tq.IDs[id] = true
				} else {
					if tq.TenantIDs[e.Tenant] == nil {
						tq.TenantIDs[e.Tenant] = map[[20]byte]bool{}
					}
					tq.TenantIDs[e.Tenant][id] = true
				}
			}
		}
		if out != "" {
			answers[e.Tenant] = append(answers[e.Tenant], out)
			sig.WriteString(e.Tenant + "/" + out + ",")
		}
	}
	o.quarantine.answers.Store(&answers)
	o.quarantine.mu.Lock()
	changed := sig.String() != o.quarantine.applied
	o.quarantine.applied = sig.String()
	o.quarantine.mu.Unlock()
	if changed {
		o.tracker.SetQuarantine(tq)
	}
}

// quarantineAnswer is the answer to an agent's report: the quarantine
// entries of its tenant and of every tenant, as peer IDs and addresses;
// nil (204 No Content, as before there was a quarantine) when none is in
// force, which agents take as an empty list.
func (o *Origin) quarantineAnswer(rep *report.Report) *report.Answer {
	ans := &report.Answer{}
	if p := o.quarantine.answers.Load(); p != nil {
		ans.Quarantine = append(ans.Quarantine, (*p)[""]...)
		if rep.Tenant != "" {
			ans.Quarantine = append(ans.Quarantine, (*p)[rep.Tenant]...)
		}
	}
	if len(ans.Quarantine) == 0 {
		return nil
	}
	if len(ans.Quarantine) > report.MaxQuarantine {
		ans.Quarantine = ans.Quarantine[:report.MaxQuarantine]
	}
	return ans
}

// quarantineRequest is the body of POST /api/v1/quarantine.
type quarantineRequest struct {
	Entry  string `json:"entry"`
	Tenant string `json:"tenant,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (o *Origin) quarantineRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+QuarantinePath, o.operator(false, "quarantine list", o.handleQuarantineList))
	mux.Handle("POST "+QuarantinePath, o.loopbackWithoutTokens(o.operator(false, "quarantine", o.handleQuarantineAdd)))
	mux.Handle("DELETE "+QuarantinePath, o.loopbackWithoutTokens(o.operator(false, "quarantine", o.handleQuarantineRemove)))
}

// loopbackWithoutTokens refuses h to callers off this host when tokens
// are off. Reading dashboards unauthenticated is the tokens-off trade-off,
// but a quarantine cuts agents off the swarm: anyone who can reach the
// origin must not get that. The direct peer address is used, never a
// forwarded header, so a proxy on the same host should run with tokens on.
func (o *Origin) loopbackWithoutTokens(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !o.tokensOn() {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				http.Error(w, "forbidden: with tokens off, the quarantine is changed from the origin's own host only", http.StatusForbidden)
				return
			}
		}
		h(w, r)
	}
}

func (o *Origin) handleQuarantineList(w http.ResponseWriter, r *http.Request, tenant string) {
	entries, err := o.quarantine.list(r.Context())
	if err != nil {
		http.Error(w, "the origin's shared state does not answer; retry later", http.StatusServiceUnavailable)
		return
	}
	out := []QuarantineEntry{}
	for _, e := range entries {
		if tenant != "" && e.Tenant != tenant {
			continue
		}
		kind, v, _ := strings.Cut(e.Entry, ":")
		if kind == report.QuarantineAgent || kind == report.QuarantineTLS {
			if id, ok := o.reports.PeerIDOf(e.Tenant, kind, v); ok {
				e.Applied = hex.EncodeToString(id[:])
			}
		}
		out = append(out, e)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// quarantineScope checks what the caller may quarantine: a tenant's
// operator its own tenant only, and no addresses.
func quarantineScope(callerTenant string, req *quarantineRequest) (int, error) {
	entry, err := report.ParseQuarantine(req.Entry)
	if err != nil {
		return http.StatusBadRequest, err
	}
	req.Entry = entry
	if req.Tenant != "" {
		if err := release.ValidateName("tenant", req.Tenant); err != nil {
			return http.StatusBadRequest, err
		}
	}
	if callerTenant != "" {
		if req.Tenant != "" && req.Tenant != callerTenant {
			return http.StatusForbidden, fmt.Errorf("%w: this token covers tenant %s only", errForbidden, callerTenant)
		}
		req.Tenant = callerTenant
		if strings.HasPrefix(entry, report.QuarantineAddr+":") {
			return http.StatusForbidden, fmt.Errorf("%w: an address may be shared by tenants: quarantine it with a fleet operator token", errForbidden)
		}
	}
	return 0, nil
}

func decodeQuarantine(w http.ResponseWriter, r *http.Request) (quarantineRequest, error) {
	var req quarantineRequest
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQuarantineRequest))
	if err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, err
	}
	if dec.More() {
		return req, errors.New("trailing data after the JSON object")
	}
	req.Reason = report.Trim(req.Reason, maxQuarantineReason)
	return req, nil
}

func (o *Origin) handleQuarantineAdd(w http.ResponseWriter, r *http.Request, tenant string) {
	req, err := decodeQuarantine(w, r)
	if err != nil {
		http.Error(w, "quarantine request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if code, err := quarantineScope(tenant, &req); err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	e := QuarantineEntry{Entry: req.Entry, Tenant: req.Tenant, Reason: req.Reason, Added: time.Now().UTC()}
	if err := o.quarantine.add(r.Context(), e); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, errQuarantineFull):
			code = http.StatusConflict
		case errors.Is(err, state.ErrUnavailable):
			code = http.StatusServiceUnavailable
		}
		o.log.Warn("quarantine not stored", "entry", e.Entry, "err", err)
		http.Error(w, "quarantine not stored: "+err.Error(), code)
		return
	}
	o.log.Info("peer quarantined", "entry", e.Entry, "tenant", e.Tenant, "reason", e.Reason)
	o.applyQuarantine(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(e)
}

func (o *Origin) handleQuarantineRemove(w http.ResponseWriter, r *http.Request, tenant string) {
	q := r.URL.Query()
	req := quarantineRequest{Entry: q.Get("entry"), Tenant: q.Get("tenant")}
	if code, err := quarantineScope(tenant, &req); err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	found, err := o.quarantine.remove(r.Context(), req.Tenant, req.Entry)
	if err != nil {
		http.Error(w, "quarantine not changed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !found {
		http.Error(w, "no such quarantine entry", http.StatusNotFound)
		return
	}
	o.log.Info("peer quarantine lifted", "entry", req.Entry, "tenant", req.Tenant)
	o.applyQuarantine(r.Context())
	w.WriteHeader(http.StatusNoContent)
}

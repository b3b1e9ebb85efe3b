package rollout

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

func postFrom(h http.Handler, addr string, body []byte) int {
	req := httptest.NewRequest("POST", report.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func openTestStore(t *testing.T, cfg Config, dir string) (*Reports, *fakeClock) {
	t.Helper()
	s, err := Open(cfg, dir, Origin{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.db != nil {
		// Sequential test reports would each wait out the batch delay and
		// an fsync; neither changes what is stored.
		s.db.NoSync, s.db.MaxBatchDelay = true, time.Microsecond
	}
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	s.now = clock.Now
	return s, clock
}

// Attack 4 without tokens (dev mode): a fake reusing a live agent's id
// from another address is refused and the record stays; a flood from one
// address is cut by the rate limit; a self-declared interval of a day
// keeps nobody live for more than stall_intervals*max_interval.
func TestReportPoisoningWithoutTokensBounded(t *testing.T) {
	s, clock := openTestStore(t, Config{}, "")
	h := mux(s)
	real := mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))
	if c := postFrom(h, "10.0.0.1:5000", mustJSON(real)); c != http.StatusNoContent {
		t.Fatalf("real report: %d", c)
	}
	fake := mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "failed", 0, report.Bytes{}))
	fake.Name = "EVIL"
	if c := postFrom(h, "10.6.6.6:5000", mustJSON(fake)); c != http.StatusForbidden {
		t.Errorf("fake from another address: %d, want 403", c)
	}
	fake.Site = "store-9"
	if c := postFrom(h, "10.0.0.1:5001", mustJSON(fake)); c != http.StatusForbidden {
		t.Errorf("fake moving the agent to another site: %d, want 403", c)
	}
	if rec := s.agents[recordKey("", "a1")]; rec.Report.Name != "host-a1" || rec.Report.Releases[0].State != "active" {
		t.Errorf("record overwritten: %+v", rec.Report)
	}
	// 1,000 fake agents from one address within a second: the address's
	// burst passes, the rest is refused.
	accepted := 0
	for i := range 1000 {
		r := mkReport(fmt.Sprint("fake-", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))
		r.IntervalSeconds = 86400
		if postFrom(h, "10.6.6.6:5000", mustJSON(r)) == http.StatusNoContent {
			accepted++
		}
	}
	if burst := int(s.addrBurst()); accepted > burst {
		t.Errorf("%d fake reports accepted from one address, burst is %d", accepted, burst)
	}
	t.Logf("1000 fake reports from one address: %d accepted (burst %.0f, then %.0f/s)", accepted, s.addrBurst(), s.cfg.RatePerAddress)
	// One identity cannot report faster than identityRate.
	n := 0
	for range 100 {
		if postFrom(h, "10.0.0.1:5000", mustJSON(real)) == http.StatusNoContent {
			n++
		}
	}
	if n > int(identityBurst) {
		t.Errorf("one agent sent %d reports in an instant, burst is %v", n, identityBurst)
	}
	clock.Add(s.cfg.MaxInterval*time.Duration(s.cfg.StallIntervals) + time.Second)
	if ro := s.View(); ro.Agents.Live != 0 {
		t.Errorf("%d agents still live %v after their last report (declared interval 1 day)", ro.Agents.Live, s.cfg.MaxInterval*time.Duration(s.cfg.StallIntervals))
	}
}

// maxReport is a report with the given number of releases and long free
// text; fill adds subscriptions up to nearly report.MaxBody bytes.
func maxReport(id string, releases int, text int, fill bool) *report.Report {
	r := &report.Report{V: report.Version, AgentID: id, Name: strings.Repeat("n", report.MaxNameLen), Site: "store-1",
		IntervalSeconds: 1, Catalog: report.Catalog{URL: strings.Repeat("u", report.MaxText), Error: strings.Repeat("e", report.MaxText)}}
	long := strings.Repeat("x", text)
	for i := range min(releases, report.MaxReleases) {
		r.Releases = append(r.Releases, report.Release{Name: fmt.Sprintf("%0100d", i), Version: "1.0", InfoHash: ih, State: "downloading",
			Size: 1 << 40, Completed: 1 << 39, LastError: long, Reason: long})
	}
	sub := report.Subscription{Subscription: strings.Repeat("s", report.MaxText), Target: "1.0", Reason: strings.Repeat("r", report.MaxText)}
	sub.Name = fmt.Sprintf("%0100d", 0)
	per := len(mustJSON(sub)) + 1
	room := (report.MaxBody - len(mustJSON(r)) - 64) / per
	if !fill {
		room = 0
	}
	for i := range min(max(room, 0), report.MaxSubs) {
		sub.Name = fmt.Sprintf("%0100d", i)
		r.Subscriptions = append(r.Subscriptions, sub)
	}
	return r
}

func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Attack 5: 200 maximum-size reports with new agent ids (they took the
// origin from 90 to 725 MiB and reports.db to 175 MiB). A report is kept
// compacted and within max_record_bytes, so the 1 MiB ones are refused
// whole and the largest storable ones cost at most 128 KiB each; the
// tenant and store budgets cap the total, and a restart brings back no
// more than they allow.
func TestReportExhaustionBounded(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestStore(t, Config{}, dir)
	h := mux(s)
	big := maxReport("big-000", report.MaxReleases, report.MaxText, true)
	bigJSON := mustJSON(big)
	if n := len(bigJSON); n < report.MaxBody*9/10 || n > report.MaxBody {
		t.Fatalf("max report is %d bytes", n)
	}
	// The largest report that is still kept whole.
	scratch, _ := openTestStore(t, Config{}, "")
	lo, hi := 1, report.MaxReleases // lo fits, hi does not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if scratch.ingest(maxReport(fmt.Sprint("x", mid), mid, report.MaxText, false)) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	fit := lo
	// Under the race detector (the CI suite) the attack is cut to 40
	// reports of each kind; figures come from a run without it.
	n := 200
	if raceOn {
		n = 40
	}
	before := heapNow()
	codes := map[int]int{}
	fitJSON := mustJSON(maxReport("fit-000", fit, report.MaxText, false))
	withID := func(b []byte, from, to string) []byte {
		return bytes.Replace(b, []byte(`"agent_id":"`+from+`"`), []byte(`"agent_id":"`+to+`"`), 1)
	}
	for i := range n {
		codes[postFrom(h, fmt.Sprintf("10.1.%d.%d:1", i/250, i%250), withID(bigJSON, "big-000", fmt.Sprintf("big-%03d", i)))]++
		codes[postFrom(h, fmt.Sprintf("10.2.%d.%d:1", i/250, i%250), withID(fitJSON, "fit-000", fmt.Sprintf("fit-%03d", i)))]++
	}
	s.db.Sync()
	grew := int64(heapNow()) - int64(before)
	st, err := os.Stat(filepath.Join(dir, "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	agents, stored := len(s.agents), s.totalBytes
	s.mu.Unlock()
	t.Logf("%d x %d-byte reports, %d x %d-byte ones: %v; %d agents kept, %.1f MiB stored (max_record_bytes %d), heap +%.1f MiB, reports.db %.1f MiB",
		n, len(bigJSON), n, len(fitJSON), codes, agents, float64(stored)/(1<<20), s.cfg.MaxRecordBytes, float64(grew)/(1<<20), float64(st.Size())/(1<<20))
	if codes[http.StatusRequestEntityTooLarge] != n || agents != n {
		t.Errorf("codes %v, %d agents: want the %d max-size reports refused whole and the %d fitting ones kept", codes, agents, n, n)
	}
	if stored > int64(n*s.cfg.MaxRecordBytes) {
		t.Errorf("%d bytes stored for %d agents, cap is %d each", stored, n, s.cfg.MaxRecordBytes)
	}
	// Stated bounds: heap below 3x the records' JSON (25 MiB for 200) and
	// the database below 2x it, against +635 MiB and 175 MiB before.
	if grew > int64(3*n*s.cfg.MaxRecordBytes) {
		t.Errorf("heap grew %d MiB", grew>>20)
	}
	if st.Size() > int64(2*n*s.cfg.MaxRecordBytes)+(4<<20) {
		t.Errorf("reports.db is %d MiB", st.Size()>>20)
	}
	s.Close()

	// Tight budgets: fake tenants (no tokens: the caller picks the
	// tenant) do not get past the store's total, and a restart with
	// tighter limits restores no more than they allow.
	cfg := Config{MaxTenantBytes: 2 << 20, MaxBytes: 3 << 20}
	s2, _ := openTestStore(t, cfg, t.TempDir())
	h2 := mux(s2)
	full := 0
	for i := range 60 {
		b := withID(fitJSON, "fit-000", fmt.Sprintf("fit-%03d", i))
		b = bytes.Replace(b, []byte(`"site":`), []byte(fmt.Sprintf(`"tenant":"t%d","site":`, i%2)), 1)
		if postFrom(h2, fmt.Sprintf("10.3.%d.%d:1", i/250, i%250), b) == http.StatusInsufficientStorage {
			full++
		}
	}
	if s2.totalBytes > cfg.MaxBytes || full == 0 {
		t.Errorf("stored %d bytes, budget %d; %d refused as full", s2.totalBytes, cfg.MaxBytes, full)
	}
	for tenant, u := range s2.perTenant {
		if u.bytes > cfg.MaxTenantBytes {
			t.Errorf("tenant %q holds %d bytes, budget %d", tenant, u.bytes, cfg.MaxTenantBytes)
		}
	}

	s3, _ := openTestStore(t, Config{MaxAgentsPerTenant: 5}, dir)
	if n := len(s3.agents); n != 5 {
		t.Errorf("restart restored %d agents, max_agents_per_tenant is 5", n)
	}
}

package seeder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/lograte"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// The rollout's report endpoint is wired to the origin's token checks: no
// token is refused with 401, a token for another site with 403.
func TestReportsNeedTokensWhenTheOriginDoes(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	o := &Origin{tokenKey: pub, tracker: tracker.New(tracker.Config{}), refusals: &lograte.Limiter{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reports, err := o.openReports()
	if err != nil {
		t.Fatal(err)
	}
	defer reports.Close()
	mux := http.NewServeMux()
	reports.Routes(mux)
	tok, err := token.Issue(priv, token.Claims{Tenant: "acme", Site: "store-1", IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rep := &report.Report{V: report.Version, AgentID: "a1", Name: "host-a1", Tenant: "acme", Site: "store-1", Region: "eu",
		IntervalSeconds: 1, Sent: time.Now(),
		Subscriptions: []report.Subscription{{Subscription: "app (channel stable)", Name: "app", Target: "1.0"}}}
	post := func(auth string) int {
		body, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", report.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code := post(tok); code != http.StatusNoContent {
		t.Errorf("token: %d", code)
	}
	rep.Site = "store-2"
	if code := post(tok); code != http.StatusForbidden {
		t.Errorf("token for another site: %d", code)
	}
}

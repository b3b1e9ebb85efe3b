package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecode feeds hostile bodies to the origin's report decoder: it never
// panics, and whatever it accepts validates, re-encodes within MaxBody
// and decodes again to the same report.
func FuzzDecode(f *testing.F) {
	valid := Report{
		V: Version, AgentID: "a1", PeerID: strings.Repeat("ab", 20), Name: "host", Site: "s1", Region: "eu", Tenant: "acme",
		IntervalSeconds: 30, Sent: time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC),
		Catalog:       Catalog{URL: "https://origin/", Error: "x"},
		Policy:        Policy{Mode: "on", CachedBytes: 10},
		Subscriptions: []Subscription{{Subscription: "app (latest)", Name: "app", Target: "1.0", Active: "1.0"}},
		Releases:      []Release{{Name: "app", Version: "1.0", InfoHash: strings.Repeat("cd", 20), State: States[0], Size: 10, Completed: 5}},
	}
	b, err := json.Marshal(valid)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := Decode(bytes.NewReader(b)); err != nil {
		f.Fatalf("seed does not decode: %v", err)
	}
	f.Add(b)
	f.Add([]byte(`{"v":1,"agent_id":"x","interval_seconds":1e308}`))
	f.Add([]byte(`{"v":1,"agent_id":"x","interval_seconds":1,"releases":[{"name":"a","version":"1","state":"active","size":-1}]}`))
	f.Add([]byte(`{"v":1} {"v":1}`))
	f.Add([]byte(`{"v":1,"agent_id":"\u0000"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Decode(bytes.NewReader(body))
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded report does not validate: %v", err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) > MaxBody {
			t.Fatalf("accepted report re-encodes to %d bytes", len(again))
		}
		r2, err := Decode(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-encoded report refused: %v\n%s", err, again)
		}
		third, _ := json.Marshal(r2)
		if !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the report:\n%s\n%s", again, third)
		}
	})
}

// FuzzTrim: agent-side trimming always yields text the origin accepts.
func FuzzTrim(f *testing.F) {
	f.Add("plain", 10)
	f.Add("caf\u00e9\x00\x7f\xff", 4)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 4*MaxText {
			return
		}
		out := Trim(s, max)
		if err := text("f", out, max); err != nil {
			t.Fatalf("Trim(%q, %d) = %q: %v", s, max, out, err)
		}
	})
}

package tracker

import (
	"net/url"
	"strings"
	"testing"
)

// agentQuery is an announce as a swarmship agent sends it.
func agentQuery() string {
	q := ann{ih: hash("parse"), id: pid(42), port: 6881, left: 1 << 30, event: "",
		ident: Identity{Tenant: "acme", Site: "site-17", Region: "region-1", Role: RoleAgent}}.values()
	q.Set("numwant", "50")
	q.Set("compact", "1")
	q.Set("key", "1a2b3c4d")
	q.Set("locality", "gateway")
	return q.Encode()
}

// FuzzParseAnnounce holds the one-pass parser to the reference (the
// url.ParseQuery parser it replaced, parseref_test.go): within the size
// limits both accept the same queries, with the same fields, and refuse the
// same ones with the same error.
func FuzzParseAnnounce(f *testing.F) {
	f.Add(agentQuery())
	f.Add(agentQuery() + "&token=a%2Bb+c&token=second")
	f.Add(agentQuery() + "&event=started&ip=10.1.2.3&no_peer_id=1&compact=0")
	f.Add(strings.Replace(agentQuery(), "info_hash", "info%5Fhash", 1))
	f.Add(strings.Replace(agentQuery(), "port=6881", "port=%36881", 1))
	f.Add(agentQuery() + "&port=1")
	f.Add(agentQuery() + "&x=%zz")
	f.Add(agentQuery() + "&x;y=1")
	f.Add(agentQuery() + "&&=&%41=%")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=65535&left=9223372036854775808")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=65535&left=+1&site=a%0Ab")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaa+&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0&event=empty&role=x")
	f.Add("")
	f.Add("%")
	f.Fuzz(func(t *testing.T, q string) {
		a, err := parseAnnounce(q)
		if len(q) > maxAnnounceQuery || strings.Count(q, "&") >= maxAnnounceParams {
			if err == nil {
				t.Fatalf("accepted a query beyond the limits (%d bytes)", len(q))
			}
			return
		}
		ref, rerr := parseAnnounceRef(q)
		switch {
		case (err == nil) != (rerr == nil):
			t.Fatalf("%q: one-pass error %v, reference error %v", q, err, rerr)
		case err != nil:
			if err.Error() != rerr.Error() {
				t.Fatalf("%q: one-pass error %q, reference error %q", q, err, rerr)
			}
			return
		}
		v, _ := url.ParseQuery(q)
		if a.token != v.Get("token") {
			t.Fatalf("%q: token %q, want %q", q, a.token, v.Get("token"))
		}
		a.token = ""
		if a != ref {
			t.Fatalf("%q:\n one-pass  %+v\n reference %+v", q, a, ref)
		}
	})
}

func TestParseAnnounceLimits(t *testing.T) {
	long := agentQuery() + "&pad=" + strings.Repeat("x", maxAnnounceQuery)
	if _, err := parseAnnounce(long); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("query of %d bytes: err %v", len(long), err)
	}
	many := agentQuery() + strings.Repeat("&k=v", maxAnnounceParams)
	if _, err := parseAnnounce(many); err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("query of %d parameters: err %v", maxAnnounceParams+16, err)
	}
	if _, err := parseAnnounce(agentQuery() + strings.Repeat("&k=v", maxAnnounceParams-20)); err != nil {
		t.Errorf("query within the limits refused: %v", err)
	}
}

// BenchmarkParseAnnounce compares the one-pass parser with the reference
// (url.ParseQuery) on an agent's announce, in one run.
func BenchmarkParseAnnounce(b *testing.B) {
	q := agentQuery()
	for _, p := range []struct {
		name  string
		parse func(string) (announce, error)
	}{{"onepass", parseAnnounce}, {"reference", parseAnnounceRef}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.parse(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseAnnounceParamLimitTrailing(t *testing.T) {
	// maxAnnounceParams separators refuse the query even when the last
	// piece is empty, as the fuzz test's limit says.
	q := strings.Repeat("&", maxAnnounceParams)
	if _, err := parseAnnounce(q); err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("%d separators: err %v", maxAnnounceParams, err)
	}
}

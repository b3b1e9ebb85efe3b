package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustFleetDoc(t *testing.T, y string) *FleetDoc {
	t.Helper()
	d, err := ParseFleetDoc("doc.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const storesNight = `
name: stores
assign: {labels: [stores]}
rates:
  profiles:
    - {name: day, down: 2Mbit, up: 1Mbit}
    - {name: night, down: 80Mbit, up: 40Mbit}
  schedule:
    - {window: "Mon-Sun 08:00-20:00", name: day}
  default: night
`

func TestParseFleetDocRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", "name: a\nassign: {labels: [x]}\nmode: on\nbandwidth: 1\n", "bandwidth"},
		{"nobody", "name: a\nmode: download-only\n", "assign"},
		{"nothing set", "name: a\nassign: {sites: [s1]}\n", "sets nothing"},
		{"bad rate", "name: a\nassign: {sites: [s1]}\nrates: {profiles: [{name: p, down: 5Mbps}]}\n", "ambiguous"},
		{"unknown profile", "name: a\nassign: {sites: [s1]}\nrates: {profiles: [{name: p}], default: q}\n", "rates.default"},
		{"bad window", "name: a\nassign: {sites: [s1]}\nwindows: [\"Mon 25:00-26:00\"]\n", "windows"},
		{"bad allow", "name: a\nassign: {sites: [s1]}\nmode: on\nallow_local: [tracker]\n", "allow_local[0]"},
		{"bad mode", "name: a\nassign: {sites: [s1]}\nmode: off\n", "ambiguous"},
		{"bad name", "name: ../x\nassign: {sites: [s1]}\nmode: on\n", "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFleetDoc("doc.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestFleetMatches(t *testing.T) {
	d := mustFleetDoc(t, "name: a\nassign: {sites: [s1], regions: [eu], labels: [stores]}\nmode: download-only\n")
	for _, tc := range []struct {
		id   FleetIdentity
		want bool
	}{
		{FleetIdentity{Site: "s1"}, true},
		{FleetIdentity{Site: "s2", Region: "eu"}, true},
		{FleetIdentity{Site: "s2", Labels: []string{"kiosk", "stores"}}, true},
		{FleetIdentity{Site: "s2", Region: "us", Labels: []string{"kiosk"}}, false},
		{FleetIdentity{}, false},
	} {
		if got := d.Matches(tc.id); got != tc.want {
			t.Errorf("Matches(%+v) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func cand(name string, d *FleetDoc, err error) FleetCandidate {
	return FleetCandidate{Name: name, Doc: d, Err: err}
}

func TestSelectFleetDocs(t *testing.T) {
	id := FleetIdentity{Site: "s1", Labels: []string{"stores"}}
	stores := mustFleetDoc(t, storesNight)
	storesV1 := mustFleetDoc(t, "name: stores\nassign: {labels: [stores]}\nmode: download-only\n")
	modeB := mustFleetDoc(t, "name: b-mode\nassign: {sites: [s1]}\nmode: origin-only\n")
	ratesZ := mustFleetDoc(t, "name: z-rates\nassign: {sites: [s1]}\nrates: {profiles: [{name: p, down: 1Mbit}], default: p}\n")
	other := mustFleetDoc(t, "name: other\nassign: {sites: [s9]}\nmode: offline\n")
	bad := errors.New("line 3: rates.default: not defined")
	names := func(ds []*FleetDoc) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name        string
		fresh       []FleetCandidate
		last        []*FleetDoc
		want        string
		wantRefused string // name:keptLast
	}{
		{"all good", []FleetCandidate{cand("stores", stores, nil), cand("b-mode", modeB, nil), cand("other", other, nil)}, nil, "b-mode,stores", ""},
		{"bad keeps last good", []FleetCandidate{cand("stores", nil, bad)}, []*FleetDoc{storesV1}, "stores", "stores:true"},
		{"bad without last good", []FleetCandidate{cand("stores", nil, bad)}, nil, "", "stores:false"},
		{"conflict refuses later", []FleetCandidate{cand("stores", stores, nil), cand("z-rates", ratesZ, nil)}, nil, "stores", "z-rates:false"},
		{"conflict keeps last good without conflict", []FleetCandidate{cand("b-mode", modeB, nil), cand("stores", storesV1, nil)}, []*FleetDoc{stores}, "b-mode,stores", "stores:true"},
		{"removed is dropped", nil, []*FleetDoc{stores}, "", ""},
		{"name mismatch", []FleetCandidate{cand("b-mode", stores, nil)}, nil, "", "b-mode:false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, refused := SelectFleetDocs(id, tc.fresh, tc.last)
			if names(got) != tc.want {
				t.Errorf("docs %q, want %q", names(got), tc.want)
			}
			var r []string
			for _, x := range refused {
				r = append(r, x.Name+":"+map[bool]string{true: "true", false: "false"}[x.KeptLast])
				if x.Error == "" {
					t.Errorf("refusal of %s has no error", x.Name)
				}
			}
			if strings.Join(r, ",") != tc.wantRefused {
				t.Errorf("refused %q, want %q", strings.Join(r, ","), tc.wantRefused)
			}
		})
	}
}

func TestMergeFleetModeAndQuota(t *testing.T) {
	for _, tc := range []struct {
		name      string
		doc       string
		local     FleetLocal
		wantMode  Mode
		wantQuota int64
		modeFrom  string
		quotaFrom string
	}{
		{"central restricts", "mode: download-only\ncache_quota: 10GB\n", FleetLocal{Mode: ModeOn},
			ModeDownloadOnly, 10e9, "policy:p", "policy:p"},
		{"local stricter wins", "mode: download-only\ncache_quota: 10GB\n", FleetLocal{Mode: ModeOffline, Quota: 1e9},
			ModeOffline, 1e9, "local", "local"},
		{"local looser loses", "mode: origin-only\ncache_quota: 10GB\n", FleetLocal{Mode: ModeDownloadOnly, Quota: 50e9},
			ModeOriginOnly, 10e9, "policy:p", "policy:p"},
		{"allow_local lets looser local win", "mode: origin-only\ncache_quota: 10GB\nallow_local: [mode, cache_quota]\n",
			FleetLocal{Mode: ModeDownloadOnly, Quota: 50e9}, ModeDownloadOnly, 50e9, "local", "local"},
		{"allow_local without local value", "mode: origin-only\ncache_quota: 10GB\nallow_local: [mode, cache_quota]\n",
			FleetLocal{}, ModeOriginOnly, 10e9, "policy:p", "policy:p"},
		{"no quota locally means none: central applies", "cache_quota: 10GB\n", FleetLocal{},
			ModeOn, 10e9, "local", "policy:p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustFleetDoc(t, "name: p\nassign: {sites: [s1]}\n"+tc.doc)
			e := MergeFleet(tc.local, []*FleetDoc{d})
			if e.Mode != tc.wantMode || e.Quota != tc.wantQuota {
				t.Errorf("mode %s quota %d, want %s %d", e.Mode, e.Quota, tc.wantMode, tc.wantQuota)
			}
			if e.Origins[FleetMode] != tc.modeFrom || e.Origins[FleetCacheQuota] != tc.quotaFrom {
				t.Errorf("origins %v, want mode from %s, quota from %s", e.Origins, tc.modeFrom, tc.quotaFrom)
			}
		})
	}
}

func TestMergeFleetRates(t *testing.T) {
	central := mustFleetDoc(t, storesNight)
	allow := mustFleetDoc(t, storesNight+"allow_local: [rates]\n")
	local := FleetLocal{Rates: FleetRateSet{Profiles: []RateProfile{{Name: "cap", Down: 1_000_000 / 8 * 5, Up: Unlimited}}, Default: "cap"}}
	noon, night := utc("2026-12-07 12:00"), utc("2026-12-07 22:00")
	for _, tc := range []struct {
		name             string
		local            FleetLocal
		doc              *FleetDoc
		at               time.Time
		down, up         Rate
		downFrom, upFrom string
		next             time.Time
	}{
		{"central day", FleetLocal{}, central, noon, 250_000, 125_000, "policy:stores", "policy:stores", utc("2026-12-07 20:00")},
		{"central night", FleetLocal{}, central, night, 10_000_000, 5_000_000, "policy:stores", "policy:stores", utc("2026-12-08 08:00")},
		// The local 5Mbit cap is above the day rate, below the night one.
		{"local cap at day loses", local, central, noon, 250_000, 125_000, "policy:stores", "policy:stores", utc("2026-12-07 20:00")},
		{"local cap at night wins", local, central, night, 625_000, 5_000_000, "local", "policy:stores", utc("2026-12-08 08:00")},
		{"allow_local: local replaces", local, allow, noon, 625_000, Unlimited, "local", "local", time.Time{}},
		{"no document", local, nil, noon, 625_000, Unlimited, "local", "local", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var docs []*FleetDoc
			if tc.doc != nil {
				docs = append(docs, tc.doc)
			}
			e := MergeFleet(tc.local, docs)
			p, from, next := e.ProfileAt(time.UTC, tc.at)
			if p.Down != tc.down || p.Up != tc.up {
				t.Errorf("down %s up %s, want %s %s", p.Down, p.Up, tc.down, tc.up)
			}
			if from["down"] != tc.downFrom || from["up"] != tc.upFrom {
				t.Errorf("origins %v, want down %s up %s", from, tc.downFrom, tc.upFrom)
			}
			if !next.Equal(tc.next) {
				t.Errorf("next edge %v, want %v", next, tc.next)
			}
		})
	}
}

func TestFleetWindows(t *testing.T) {
	d := mustFleetDoc(t, "name: w\nassign: {sites: [s1]}\nwindows: [\"Mon-Fri 20:00-06:00\"]\n")
	dAllow := mustFleetDoc(t, "name: w\nassign: {sites: [s1]}\nwindows: [\"Mon-Fri 20:00-06:00\"]\nallow_local: [windows]\n")
	own := []Window{mustWindow(t, "Mon-Sun 10:00-14:00")}
	noon, night := utc("2026-12-07 12:00"), utc("2026-12-07 22:00") // a Monday
	for _, tc := range []struct {
		name string
		doc  *FleetDoc
		sub  []Window
		at   time.Time
		want bool
	}{
		{"inside central", d, nil, night, true},
		{"outside central", d, nil, noon, false},
		{"own windows do not widen", d, own, noon, false},
		{"allow_local: own windows replace", dAllow, own, noon, true},
		{"allow_local without own windows", dAllow, nil, noon, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := MergeFleet(FleetLocal{}, []*FleetDoc{tc.doc})
			ok, why := e.WindowOpen(tc.sub, time.UTC, tc.at)
			if ok != tc.want {
				t.Errorf("open = %v (%s), want %v", ok, why, tc.want)
			}
			if !ok && !strings.Contains(why, "policy:w") {
				t.Errorf("reason %q does not name the document", why)
			}
		})
	}
	e := MergeFleet(FleetLocal{}, []*FleetDoc{d})
	if got := e.WindowsNextEdge(time.UTC, noon); !got.Equal(utc("2026-12-07 20:00")) {
		t.Errorf("next edge %v", got)
	}
}

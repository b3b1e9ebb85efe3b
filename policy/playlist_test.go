package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustPlaylist(t *testing.T, entries ...PlaylistEntry) *Playlist {
	t.Helper()
	p := &Playlist{Entries: entries}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func entry(content, when string, screens ...string) PlaylistEntry {
	if len(screens) == 0 {
		screens = []string{"lobby"}
	}
	return PlaylistEntry{Screens: screens, Content: content, Path: "hls/index.m3u8", When: when}
}

func dated(content, date, when string) PlaylistEntry {
	e := entry(content, when)
	e.Date = date
	return e
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	return loc
}

// TestPlaylistAt: precedence, weekdays, midnight wrap and one-off dates,
// on the wall clock of the site's zone.
func TestPlaylistAt(t *testing.T) {
	loc := berlin(t)
	p := mustPlaylist(t,
		entry("promo@1", "Sat,Sun 10:00-12:00"),     // exception first
		entry("day@1", "Mon-Sun 08:00-20:00"),       // general
		entry("night:signage", "daily 22:00-02:00"), // wraps
		dated("xmas@1", "2026-12-24", "09:00-11:00"),
		dated("nye@1", "2026-12-31", "23:00-01:00"), // dated wrap into the new year
		entry("other@1", "daily 00:00-24:00", "window"),
	)
	// 2026-12-05 is a Saturday.
	tests := []struct {
		local, screen, want string
	}{
		{"2026-12-05 09:59", "lobby", "day@1"},
		{"2026-12-05 10:00", "lobby", "promo@1"}, // first listed wins the overlap
		{"2026-12-05 11:59", "lobby", "promo@1"},
		{"2026-12-05 12:00", "lobby", "day@1"},
		{"2026-12-07 10:00", "lobby", "day@1"}, // Monday: no promo
		{"2026-12-07 20:00", "lobby", ""},      // end is exclusive, gap until 22:00
		{"2026-12-07 23:30", "lobby", "night:signage"},
		{"2026-12-08 01:59", "lobby", "night:signage"}, // after midnight: the wrap
		{"2026-12-08 02:00", "lobby", ""},
		{"2026-12-24 08:59", "lobby", "day@1"},
		{"2026-12-24 09:00", "lobby", "xmas@1"}, // dated beats weekly
		{"2026-12-24 11:00", "lobby", "day@1"},
		{"2026-12-31 23:30", "lobby", "nye@1"}, // dated beats the nightly wrap
		{"2027-01-01 00:30", "lobby", "nye@1"}, // across the year end
		{"2027-01-01 01:00", "lobby", "night:signage"},
		{"2027-12-24 09:30", "lobby", "day@1"}, // one-off: not next year
		{"2026-12-07 10:00", "window", "other@1"},
		{"2026-12-07 10:00", "nobody", ""},
	}
	for _, tc := range tests {
		at, err := time.ParseInLocation("2006-01-02 15:04", tc.local, loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.At(tc.screen, at, loc); got.Content != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.screen, tc.local, got.Content, tc.want)
		}
	}
}

// TestPlaylistNextSwitch: the next instant the answer changes, exact to
// the second, including across daylight-saving changes in Europe/Berlin
// (2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET).
func TestPlaylistNextSwitch(t *testing.T) {
	loc := berlin(t)
	cases := []struct {
		name    string
		entries []PlaylistEntry
		from    string // RFC 3339
		want    string // RFC 3339, "" for never
		content string // what plays from then
	}{
		{"plain start", []PlaylistEntry{entry("a@1", "daily 08:00-18:00")},
			"2026-12-07T07:59:59.5+01:00", "2026-12-07T08:00:00+01:00", "a@1"},
		{"plain end", []PlaylistEntry{entry("a@1", "daily 08:00-18:00")},
			"2026-12-07T08:00:00+01:00", "2026-12-07T18:00:00+01:00", ""},
		{"same content hands over: no switch", []PlaylistEntry{entry("a@1", "daily 08:00-12:00"), entry("a@1", "daily 12:00-18:00")},
			"2026-12-07T09:00:00+01:00", "2026-12-07T18:00:00+01:00", ""},
		{"wrap ends next morning", []PlaylistEntry{entry("n@1", "Fri 22:00-06:00")},
			"2026-12-04T23:00:00+01:00", "2026-12-05T06:00:00+01:00", ""},
		{"weekend skip", []PlaylistEntry{entry("w@1", "Mon-Fri 08:00-18:00")},
			"2026-12-04T18:00:00+01:00", "2026-12-07T08:00:00+01:00", "w@1"},
		{"spring forward: 02:30 does not exist, starts at the jump", []PlaylistEntry{entry("d@1", "Sun 02:30-05:00")},
			"2026-03-29T00:00:00+01:00", "2026-03-29T03:00:00+02:00", "d@1"},
		{"spring forward: 09:00 CEST is 07:00 UTC", []PlaylistEntry{entry("m@1", "daily 09:00-10:00")},
			"2026-03-28T12:00:00+01:00", "2026-03-29T09:00:00+02:00", "m@1"},
		{"fall back: the repeated hour counts twice", []PlaylistEntry{entry("r@1", "Sun 02:00-03:00")},
			"2026-10-25T02:10:00+02:00", "2026-10-25T03:00:00+01:00", ""},
		{"dated far ahead", []PlaylistEntry{entry("w@1", "daily 00:00-24:00"), dated("x@1", "2027-06-01", "10:00-11:00")},
			"2026-12-07T10:00:00+01:00", "2027-06-01T10:00:00+02:00", "x@1"},
		{"dated tomorrow after 15 quiet days is still found", []PlaylistEntry{entry("w@1", "daily 00:00-24:00"), dated("x@1", "2026-12-23", "10:00-11:00")},
			"2026-12-07T10:00:00+01:00", "2026-12-23T10:00:00+01:00", "x@1"},
		{"dated in the past: never", []PlaylistEntry{entry("w@1", "daily 00:00-24:00"), dated("x@1", "2025-06-01", "10:00-11:00")},
			"2026-12-07T10:00:00+01:00", "", "w@1"},
		{"nothing scheduled: never", []PlaylistEntry{entry("w@1", "daily 00:00-24:00", "other")},
			"2026-12-07T10:00:00+01:00", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlaylist(t, tc.entries...)
			from, err := time.Parse(time.RFC3339Nano, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			got, slot := p.NextSwitch("lobby", from, loc)
			if tc.want == "" {
				if !got.IsZero() {
					t.Fatalf("switch at %s, want none", got)
				}
			} else {
				want, _ := time.Parse(time.RFC3339, tc.want)
				if !got.Equal(want) {
					t.Fatalf("switch at %s, want %s", got, want)
				}
			}
			if slot.Content != tc.content {
				t.Errorf("then plays %q, want %q", slot.Content, tc.content)
			}
			if !got.IsZero() {
				if before := p.At("lobby", got.Add(-time.Nanosecond), loc); !before.Same(p.At("lobby", from, loc)) {
					t.Errorf("answer changed before the switch: %q", before.Content)
				}
				if at := p.At("lobby", got, loc); !at.Same(slot) {
					t.Errorf("At(switch) = %q, NextSwitch says %q", at.Content, slot.Content)
				}
			}
		})
	}
}

// TestPlaylistSwitchesAgreeWithAt walks a week of minutes through a busy
// schedule in a DST week: every change of At is announced by NextSwitch.
func TestPlaylistSwitchesAgreeWithAt(t *testing.T) {
	loc := berlin(t)
	p := mustPlaylist(t,
		entry("a@1", "Sat,Sun 01:30-02:45"),
		entry("b@1", "daily 22:00-03:00"),
		entry("c@1", "Mon-Fri 08:00-18:00"),
		dated("d@1", "2026-10-25", "02:15-02:30"),
	)
	from := time.Date(2026, 10, 22, 0, 0, 0, 0, loc)
	to := from.Add(7 * 24 * time.Hour)
	next, _ := p.NextSwitch("lobby", from, loc)
	prev := p.At("lobby", from, loc)
	for x := from; x.Before(to); x = x.Add(time.Minute) {
		cur := p.At("lobby", x, loc)
		if cur.Same(prev) {
			continue
		}
		if !x.Equal(next) {
			t.Fatalf("answer changed at %s (%q -> %q), NextSwitch said %s", x, prev.Content, cur.Content, next)
		}
		prev = cur
		next, _ = p.NextSwitch("lobby", x, loc)
	}
}

func TestParsePlaylistStrict(t *testing.T) {
	good := `{"timezone":"Europe/Berlin","entries":[{"screens":["lobby"],"content":"promo@1.0","playlist":"hls/index.m3u8","when":"Mon-Fri 08:00-18:00"}]}`
	p, err := ParsePlaylist([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Screens(); len(got) != 1 || got[0] != "lobby" {
		t.Fatalf("screens %v", got)
	}
	manyEntries := Playlist{}
	for range MaxPlaylistEntries + 1 {
		manyEntries.Entries = append(manyEntries.Entries, entry("a@1", "daily 08:00-09:00"))
	}
	tooMany, _ := json.Marshal(manyEntries)
	manyScreens := Playlist{}
	for i := range MaxScreens/MaxEntryScreens + 1 {
		var s []string
		for j := range MaxEntryScreens {
			s = append(s, fmt.Sprintf("s%d-%d", i, j))
		}
		manyScreens.Entries = append(manyScreens.Entries, entry("a@1", "daily 08:00-09:00", s...))
	}
	tooManyScreens, _ := json.Marshal(manyScreens)
	bad := map[string]string{
		"unknown field":    strings.Replace(good, `"when"`, `"priority":1,"when"`, 1),
		"trailing":         good + "{}",
		"escaping path":    strings.Replace(good, "hls/index.m3u8", "../x.m3u8", 1),
		"absolute path":    strings.Replace(good, "hls/index.m3u8", "/etc/passwd", 1),
		"bad content":      strings.Replace(good, "promo@1.0", "promo", 1),
		"bad channel":      strings.Replace(good, "promo@1.0", "promo:../x", 1),
		"bad screen":       strings.Replace(good, `"lobby"`, `"lob/by"`, 1),
		"no screens":       strings.Replace(good, `["lobby"]`, `[]`, 1),
		"bad window":       strings.Replace(good, "Mon-Fri 08:00-18:00", "Mon-Fri 08:00-08:00", 1),
		"dated with days":  strings.Replace(good, `"when"`, `"date":"2026-12-24","when"`, 1),
		"bad date":         strings.Replace(good, `"when":"Mon-Fri 08:00-18:00"`, `"date":"2026-13-01","when":"08:00-18:00"`, 1),
		"bad timezone":     strings.Replace(good, "Europe/Berlin", "../../etc/x", 1),
		"too many entries": string(tooMany),
		"too many screens": string(tooManyScreens),
		"too big":          `{"entries":[],"timezone":"` + strings.Repeat(" ", MaxPlaylistBytes) + `"}`,
	}
	for name, doc := range bad {
		if _, err := ParsePlaylist([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dok := strings.Replace(good, `"when":"Mon-Fri 08:00-18:00"`, `"date":"2026-12-24","when":"08:00-18:00"`, 1)
	if _, err := ParsePlaylist([]byte(dok)); err != nil {
		t.Errorf("dated entry refused: %v", err)
	}
}

func TestParseContentRef(t *testing.T) {
	for s, want := range map[string]ContentRef{
		"promo@1.0":      {Name: "promo", Version: "1.0"},
		"promo:signage":  {Name: "promo", Channel: "signage"},
		"promo@1.0+b.2":  {Name: "promo", Version: "1.0+b.2"},
		"ads-eu:stable1": {Name: "ads-eu", Channel: "stable1"},
	} {
		got, err := ParseContentRef(s)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "promo", "@1", ":c", "promo@", "promo:", "a b@1"} {
		if _, err := ParseContentRef(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzParsePlaylist: any document either is refused or answers At and
// NextSwitch without panicking, and NextSwitch moves forward.
func FuzzParsePlaylist(f *testing.F) {
	f.Add([]byte(`{"entries":[{"screens":["a"],"content":"p@1","playlist":"i.m3u8","when":"Fri 22:00-02:00"},{"screens":["a","b"],"content":"q:c","playlist":"x/i.m3u8","date":"2026-03-29","when":"02:30-03:30"}]}`))
	f.Add([]byte(`{"timezone":"Europe/Berlin","entries":[]}`))
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlaylist(b)
		if err != nil {
			return
		}
		at := time.Date(2026, 3, 28, 23, 0, 0, 0, loc)
		for _, s := range p.Screens() {
			p.At(s, at, loc)
			if next, _ := p.NextSwitch(s, at, loc); !next.IsZero() && !next.After(at) {
				t.Fatalf("next switch %s not after %s", next, at)
			}
		}
	})
}

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/release"
)

// A signage schedule (Playlist) says what each screen plays when: entries
// bind screens to a release's playlist over a weekly window or a one-off
// dated window, read on the site's wall clock. It is signed into the
// catalog (catalog.PlaylistKey) and evaluated by agents; this file is the
// pure part: parse, validate, and answer "what plays now, and when does
// that change" for an instant and a time zone passed in.

// Limits of a signage schedule: a document that exceeds one is refused
// whole, so an agent's work per evaluation is bounded.
const (
	MaxPlaylistBytes   = 256 << 10
	MaxPlaylistEntries = 512
	MaxScreens         = 256 // distinct screens in one schedule
	MaxEntryScreens    = 64  // screens named by one entry
	MaxPlaylistPath    = 1024
)

// Playlist is a signed signage schedule.
type Playlist struct {
	// TimeZone is the IANA zone the times are written in when the agent's
	// config names none (signage.timezone wins: one schedule can serve
	// stores in several zones, each at its own 09:00). Empty means UTC.
	TimeZone string `json:"timezone,omitempty"`
	// Entries in precedence order: a dated entry beats every weekly one;
	// among entries of the same kind the first listed wins, as in the
	// rate schedule, so put exceptions first.
	Entries []PlaylistEntry `json:"entries"`

	byScreen map[string][]int // entry indices per screen, set by Validate
}

// PlaylistEntry puts one playlist on some screens during a window.
type PlaylistEntry struct {
	Screens []string `json:"screens"`
	// Content is the release: "name@version" or "name:channel" (the
	// version the channel points at when the agent evaluates).
	Content string `json:"content"`
	// Path is the playlist (.m3u8) inside the release, slash-separated.
	Path string `json:"playlist"`
	// When is a window, "Mon-Fri 08:00-18:00" (see ParseWindow); with Date
	// it must be only "HH:MM-HH:MM". End < start wraps past midnight.
	When string `json:"when"`
	// Date (YYYY-MM-DD, site calendar) makes the entry one-off: it starts
	// on that day only.
	Date string `json:"date,omitempty"`

	window Window
	day    int // day number (dayNumber) of Date; -1 when weekly
}

// Slot is what a screen plays: an entry's content and playlist. The zero
// Slot means nothing is scheduled.
type Slot struct {
	Content string `json:"content"`
	Path    string `json:"playlist"`
	Entry   int    `json:"entry"` // index in Entries, for people
}

// Same reports whether two slots play the same thing (entries that hand
// over to the same content are no switch).
func (s Slot) Same(o Slot) bool { return s.Content == o.Content && s.Path == o.Path }

// IsZero reports whether nothing is scheduled.
func (s Slot) IsZero() bool { return s.Content == "" }

// ContentRef is a parsed Content: Version or Channel is set.
type ContentRef struct {
	Name, Version, Channel string
}

// ParseContentRef reads "name@version" or "name:channel".
func ParseContentRef(s string) (ContentRef, error) {
	var c ContentRef
	if n, ch, ok := strings.Cut(s, ":"); ok {
		c = ContentRef{Name: n, Channel: ch}
		if err := release.ValidateName("channel", ch); err != nil {
			return c, fmt.Errorf("content %q: %w", s, err)
		}
	} else {
		r, has := release.Parse(s)
		if !has {
			return c, fmt.Errorf("content %q: want name@version or name:channel", s)
		}
		c = ContentRef{Name: r.Name, Version: r.Version}
		if err := release.ValidateName("version", r.Version); err != nil {
			return c, fmt.Errorf("content %q: %w", s, err)
		}
	}
	if err := release.ValidateName("name", c.Name); err != nil {
		return c, fmt.Errorf("content %q: %w", s, err)
	}
	return c, nil
}

// ValidatePlaylistPath checks a playlist path inside a release: relative,
// slash-separated components that each pass release.ValidatePathComponent.
func ValidatePlaylistPath(p string) error {
	if p == "" || len(p) > MaxPlaylistPath {
		return fmt.Errorf("playlist path %q: empty or longer than %d bytes", p, MaxPlaylistPath)
	}
	for c := range strings.SplitSeq(p, "/") {
		if err := release.ValidatePathComponent(c); err != nil {
			return fmt.Errorf("playlist path %q: %w", p, err)
		}
	}
	return nil
}

// ParsePlaylist decodes a schedule strictly (unknown fields, trailing data
// and anything over the limits are errors) and validates it.
func ParsePlaylist(b []byte) (*Playlist, error) {
	if len(b) > MaxPlaylistBytes {
		return nil, fmt.Errorf("signage schedule: %d bytes, at most %d", len(b), MaxPlaylistBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Playlist
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("signage schedule: %w", err)
	}
	if dec.More() {
		return nil, errors.New("signage schedule: trailing data")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks every entry and the limits, and prepares the entries
// for At and NextSwitch (call it on a Playlist built by hand).
func (p *Playlist) Validate() error {
	if len(p.TimeZone) > release.MaxNameLen || strings.ContainsAny(p.TimeZone, " \t\n\\") || strings.Contains(p.TimeZone, "..") {
		return fmt.Errorf("signage schedule: bad timezone %q", p.TimeZone)
	}
	if len(p.Entries) > MaxPlaylistEntries {
		return fmt.Errorf("signage schedule: %d entries, at most %d", len(p.Entries), MaxPlaylistEntries)
	}
	by := map[string][]int{}
	for i := range p.Entries {
		e := &p.Entries[i]
		if err := e.prepare(); err != nil {
			return fmt.Errorf("signage schedule: entry %d: %w", i+1, err)
		}
		for _, s := range e.Screens {
			if n := len(by[s]); n == 0 || by[s][n-1] != i {
				by[s] = append(by[s], i)
			}
		}
		if len(by) > MaxScreens {
			return fmt.Errorf("signage schedule: more than %d screens", MaxScreens)
		}
	}
	p.byScreen = by
	return nil
}

func (e *PlaylistEntry) prepare() error {
	if len(e.Screens) == 0 || len(e.Screens) > MaxEntryScreens {
		return fmt.Errorf("%d screens, want 1 to %d", len(e.Screens), MaxEntryScreens)
	}
	for _, s := range e.Screens {
		if err := release.ValidateName("screen", s); err != nil {
			return err
		}
	}
	if _, err := ParseContentRef(e.Content); err != nil {
		return err
	}
	if err := ValidatePlaylistPath(e.Path); err != nil {
		return err
	}
	w, err := ParseWindow(e.When)
	if err != nil {
		return err
	}
	e.window, e.day = w, -1
	if e.Date != "" {
		if f := strings.Fields(e.When); len(f) != 1 {
			return fmt.Errorf("when %q: a dated entry takes only HH:MM-HH:MM", e.When)
		}
		d, err := time.Parse(time.DateOnly, e.Date)
		if err != nil {
			return fmt.Errorf("date %q: want YYYY-MM-DD", e.Date)
		}
		e.day = dayNumber(d.Year(), d.Month(), d.Day())
	}
	return nil
}

// dayNumber counts days on the proleptic calendar, so that "the day after"
// is +1 across months and years.
func dayNumber(y int, m time.Month, d int) int {
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// containsLocal reports whether the entry covers local day dn (weekday
// wd) at minute m. A window that wraps belongs to the day it starts on.
func (e *PlaylistEntry) containsLocal(dn int, wd time.Weekday, m int) bool {
	if e.day < 0 {
		return e.window.containsLocal(wd, m)
	}
	w := e.window
	if w.Start < w.End {
		return dn == e.day && m >= w.Start && m < w.End
	}
	return (dn == e.day && m >= w.Start) || (dn == e.day+1 && m < w.End)
}

// Screens lists the screens the schedule names, sorted.
func (p *Playlist) Screens() []string {
	out := make([]string, 0, len(p.byScreen))
	for s := range p.byScreen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// At returns what screen plays at t on the wall clock of loc (nil: UTC):
// the first dated entry that covers t, else the first weekly one, else
// the zero Slot. Precision is one minute, as for every Window.
func (p *Playlist) At(screen string, t time.Time, loc *time.Location) Slot {
	lt := t.In(orUTC(loc))
	return p.atLocal(screen, dayNumber(lt.Date()), lt.Weekday(), lt.Hour()*60+lt.Minute())
}

func (p *Playlist) atLocal(screen string, dn int, wd time.Weekday, m int) Slot {
	weekly := -1
	for _, i := range p.byScreen[screen] {
		e := &p.Entries[i]
		if !e.containsLocal(dn, wd, m) {
			continue
		}
		if e.day >= 0 {
			return Slot{Content: e.Content, Path: e.Path, Entry: i}
		}
		if weekly < 0 {
			weekly = i
		}
	}
	if weekly < 0 {
		return Slot{Entry: -1}
	}
	e := &p.Entries[weekly]
	return Slot{Content: e.Content, Path: e.Path, Entry: weekly}
}

// NextSwitch returns the first instant after t at which screen's Slot
// differs (Same) from its Slot at t, and that Slot; the zero Time when it
// never changes. It steps from edge to edge on the local wall clock
// (window starts and ends, midnight, the zone's offset changes), so it is
// exact across daylight-saving changes: a start inside a skipped hour
// switches when the clock jumps, and a window in a repeated hour covers
// both occurrences (see Window). The result is in loc.
func (p *Playlist) NextSwitch(screen string, t time.Time, loc *time.Location) (time.Time, Slot) {
	loc = orUTC(loc)
	edges := []int{24 * 60}
	var dated []int
	for _, i := range p.byScreen[screen] {
		e := &p.Entries[i]
		edges = append(edges, e.window.Start, e.window.End)
		if e.day >= 0 {
			dated = append(dated, e.day)
		}
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	slices.Sort(dated)

	cur := p.At(screen, t, loc)
	x := t
	// Weekly entries repeat: an answer that holds for 15 days (two weeks
	// and a daylight-saving jump) holds until the next dated entry.
	limit := t.Add(horizon)
	for {
		lt := x.In(loc)
		m := lt.Hour()*60 + lt.Minute()
		i, _ := slices.BinarySearch(edges, m+1)
		next := x.Add(time.Duration(edges[i]-m)*time.Minute -
			time.Duration(lt.Second())*time.Second - time.Duration(lt.Nanosecond()))
		if _, end := lt.ZoneBounds(); !end.IsZero() && end.Before(next) {
			next = end
		}
		if next.After(limit) {
			// Only dated entries can still change the answer: scan on
			// through one that starts soon, jump to the eve of a later one.
			dn := dayNumber(lt.Date())
			j, _ := slices.BinarySearch(dated, dn-1)
			switch {
			case j == len(dated):
				return time.Time{}, cur
			case dated[j] <= dn+1:
				limit = next.Add(3 * 24 * time.Hour)
			default:
				d := time.Unix(int64(dated[j]-1)*86400, 0).UTC()
				x = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
				limit = x.Add(3 * 24 * time.Hour)
				if s := p.At(screen, x, loc); !s.Same(cur) {
					return x, s // not expected: the eve has no dated entry
				}
				continue
			}
		}
		if s := p.At(screen, next, loc); !s.Same(cur) {
			return next.In(loc), s
		}
		x = next
	}
}

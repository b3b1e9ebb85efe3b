package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Weekdays is a set of days of the week, bit 1<<time.Weekday per day.
type Weekdays uint8

// EveryDay is the set of all seven days ("daily").
const EveryDay Weekdays = 1<<7 - 1

// Has reports whether d is in the set.
func (w Weekdays) Has(d time.Weekday) bool { return w&(1<<uint(d)) != 0 }

// mondayFirst lists the days in the order they are written.
var mondayFirst = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// String writes the set as ParseWindow reads it: "daily", "Mon-Fri",
// "Sat,Sun", "Mon,Wed-Fri". Runs of three or more days become ranges.
func (w Weekdays) String() string {
	w &= EveryDay
	switch w {
	case EveryDay:
		return "daily"
	case 0:
		return "(no days)"
	}
	var parts []string
	for i := 0; i < 7; {
		if !w.Has(mondayFirst[i]) {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.Has(mondayFirst[j+1]) {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, dayAbbr(mondayFirst[i]))
		case j == i+1:
			parts = append(parts, dayAbbr(mondayFirst[i]), dayAbbr(mondayFirst[j]))
		default:
			parts = append(parts, dayAbbr(mondayFirst[i])+"-"+dayAbbr(mondayFirst[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func dayAbbr(d time.Weekday) string { return d.String()[:3] }

// Window is a weekly time window in local wall-clock time: on each of Days
// it opens at Start and closes at End (exclusive), both in minutes after
// local midnight.
//
// If End < Start the window wraps past midnight and belongs to the day it
// starts on: "Fri 22:00-06:00" runs from Friday 22:00 to Saturday 06:00, and
// "Sun 22:00-06:00" from Sunday 22:00 to Monday 06:00.
//
// Windows are wall-clock times, so across a daylight-saving change:
//   - a window that lies in the skipped hour has no instant that day
//     (Europe/Berlin "Sun 02:00-03:00" on 2026-03-29 never opens), and one that
//     straddles the gap is that much shorter ("Sun 01:00-04:00" lasts 2h);
//   - a window in the repeated hour covers both occurrences (Europe/Berlin
//     "Sun 02:00-03:00" on 2026-10-25 lasts 2h: 02:00 CEST to 03:00 CET);
//   - a window that opens inside the skipped hour opens when the clock jumps
//     ("Sun 02:30-05:00" on 2026-03-29 opens at 03:00 CEST).
//
// Precision is one minute: seconds are ignored when a window is checked.
type Window struct {
	Days  Weekdays // days the window starts on
	Start int      // minutes after local midnight, 0-1439
	End   int      // minutes after local midnight, 1-1440; End < Start wraps past midnight
}

// ParseWindow reads a window written as "DAYS HH:MM-HH:MM", for example
// "Mon-Fri 08:00-18:00", "Sat,Sun 00:00-24:00" or "daily 22:00-06:00".
//
// DAYS is "daily" or a comma-separated list of days and day ranges; days are
// Mon Tue Wed Thu Fri Sat Sun or their full names, in any case; a range may
// wrap the week ("Fri-Mon"). Without DAYS ("08:00-18:00") the window is daily.
// Hours run 00-24; 24:00 is only valid as an end; an end of 00:00 means
// midnight at the end of the day. Start and end must differ: write
// 00:00-24:00 for a whole day. Spaces around "-" and "," are allowed.
func ParseWindow(s string) (Window, error) {
	w, err := parseWindow(s)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	return w, nil
}

func parseWindow(s string) (Window, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Window{}, errors.New(`empty; want "DAYS HH:MM-HH:MM", e.g. "Mon-Fri 08:00-18:00"`)
	}
	// The times start at the first field that starts with a digit.
	split := len(fields)
	for i, f := range fields {
		if f[0] >= '0' && f[0] <= '9' {
			split = i
			break
		}
	}
	if split == len(fields) {
		return Window{}, errors.New(`no time range; want "DAYS HH:MM-HH:MM", e.g. "Mon-Fri 08:00-18:00"`)
	}
	days := EveryDay
	if split > 0 {
		var err error
		if days, err = parseDays(strings.Join(fields[:split], "")); err != nil {
			return Window{}, err
		}
	}
	span := strings.Join(fields[split:], "")
	from, to, ok := strings.Cut(span, "-")
	if !ok || strings.Contains(to, "-") {
		return Window{}, fmt.Errorf("bad time range %q: want HH:MM-HH:MM", span)
	}
	start, err := parseClock(from, false)
	if err != nil {
		return Window{}, err
	}
	end, err := parseClock(to, true)
	if err != nil {
		return Window{}, err
	}
	if end == 0 && start != 0 {
		end = 24 * 60 // "22:00-00:00" ends at midnight
	}
	w := Window{Days: days, Start: start, End: end}
	if err := w.Validate(); err != nil {
		return Window{}, err
	}
	return w, nil
}

var dayNames = map[string]time.Weekday{
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tues": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thur": time.Thursday, "thurs": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
	"sun": time.Sunday, "sunday": time.Sunday,
}

func parseDay(s string) (time.Weekday, error) {
	d, ok := dayNames[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("unknown day %q: want Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily", s)
	}
	return d, nil
}

func parseDays(s string) (Weekdays, error) {
	if strings.EqualFold(s, "daily") {
		return EveryDay, nil
	}
	var set Weekdays
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("bad day list %q: empty item", s)
		}
		from, to, isRange := strings.Cut(item, "-")
		a, err := parseDay(from)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return 0, err
			}
		}
		for d := a; ; d = (d + 1) % 7 { // a range may wrap the week: Fri-Mon
			set |= 1 << uint(d)
			if d == b {
				break
			}
		}
	}
	return set, nil
}

// parseClock reads H:MM or HH:MM as minutes after midnight.
func parseClock(s string, isEnd bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, fmt.Errorf("bad time %q: want HH:MM", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	switch {
	case h > 24:
		return 0, fmt.Errorf("bad time %q: hour must be 00-24", s)
	case m > 59:
		return 0, fmt.Errorf("bad time %q: minute must be 00-59", s)
	case h == 24 && m != 0:
		return 0, fmt.Errorf("bad time %q: the latest time is 24:00", s)
	case h == 24 && !isEnd:
		return 0, fmt.Errorf("bad time %q: 24:00 is only valid as an end", s)
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Validate checks a Window built by hand (ParseWindow already does).
func (w Window) Validate() error {
	switch {
	case w.Days&EveryDay == 0:
		return errors.New("no days")
	case w.Start == w.End:
		return fmt.Errorf("start and end are both %s: use 00:00-24:00 for a whole day", clock(w.Start))
	case w.Start < 0 || w.Start >= 24*60:
		return fmt.Errorf("start %d is outside 0-1439 minutes", w.Start)
	case w.End <= 0 || w.End > 24*60:
		return fmt.Errorf("end %d is outside 1-1440 minutes", w.End)
	}
	return nil
}

// String writes w as ParseWindow reads it, e.g. "Mon-Fri 22:00-06:00".
func (w Window) String() string {
	return w.Days.String() + " " + clock(w.Start) + "-" + clock(w.End)
}

// Wraps reports whether the window runs past midnight into the next day.
func (w Window) Wraps() bool { return w.End < w.Start }

// Contains reports whether the instant t falls inside the window, read on
// the wall clock of loc (nil means UTC). An invalid window contains nothing.
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	if w.Validate() != nil {
		return false
	}
	lt := t.In(orUTC(loc))
	return w.containsLocal(lt.Weekday(), lt.Hour()*60+lt.Minute())
}

// containsLocal is Contains on a local weekday and minute of the day.
func (w Window) containsLocal(wd time.Weekday, m int) bool {
	if w.Start < w.End {
		return w.Days.Has(wd) && m >= w.Start && m < w.End
	}
	// Wrapping: the evening part of a listed day, or the morning part after one.
	return (w.Days.Has(wd) && m >= w.Start) || (w.Days.Has((wd+6)%7) && m < w.End)
}

// MarshalText implements encoding.TextMarshaler.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseWindow.
func (w *Window) UnmarshalText(b []byte) error {
	v, err := ParseWindow(string(b))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

package policy

import (
	"fmt"
	"slices"
	"time"
)

// Rule binds a weekly window to a name, such as a rate profile's.
type Rule struct {
	Window Window `yaml:"window"` // e.g. "Mon-Fri 08:00-18:00"
	Name   string `yaml:"name"`   // what the rule selects, e.g. a rate profile
}

// Schedule picks a name by the time of the week in one time zone.
//
// Overlaps: the FIRST rule in Rules whose window contains the instant wins,
// as in a firewall rule list, so put exceptions before the general rules.
// Outside every window nothing applies (At returns ok == false) and the
// caller uses its default.
type Schedule struct {
	// Location is the site's time zone (time.LoadLocation("Europe/Berlin"));
	// nil means UTC. Windows are read on its wall clock.
	Location *time.Location `yaml:"-"`
	Rules    []Rule         `yaml:"rules"`
}

// Validate checks every rule's window and that every rule has a name.
func (s Schedule) Validate() error {
	for i, r := range s.Rules {
		if err := r.Window.Validate(); err != nil {
			return fmt.Errorf("rule %d (%s): %w", i+1, r.Window, err)
		}
		if r.Name == "" {
			return fmt.Errorf("rule %d (%s): no name", i+1, r.Window)
		}
	}
	return nil
}

// At returns the name of the first rule whose window contains t, or
// ok == false if none does.
func (s Schedule) At(t time.Time) (name string, ok bool) {
	lt := t.In(orUTC(s.Location))
	return s.atLocal(lt.Weekday(), lt.Hour()*60+lt.Minute())
}

func (s Schedule) atLocal(wd time.Weekday, m int) (string, bool) {
	for _, r := range s.Rules {
		if r.Window.Validate() == nil && r.Window.containsLocal(wd, m) {
			return r.Name, true
		}
	}
	return "", false
}

// horizon bounds NextChange's search. A weekly answer that holds for two
// weeks holds forever; two weeks (not one) because a daylight-saving jump
// can skip a window's only occurrence in a given week.
const horizon = 15 * 24 * time.Hour

// NextChange returns the first instant after t at which At's answer (name
// and ok) differs from its answer at t: the next window edge that matters,
// skipping edges where one rule hands over to another rule of the same name.
// It is correct across daylight-saving changes (see Window) and returns the
// zero Time when the answer does not change within 15 days, which for a
// weekly schedule means never (no rules, or one rule covering all week).
// The result is in the schedule's Location.
func (s Schedule) NextChange(t time.Time) time.Time {
	loc := orUTC(s.Location)
	// The answer depends only on the local weekday and minute of the day,
	// so it can change only at midnight, at a window's start or end minute,
	// or when the zone's offset changes. Step from one such edge to the next.
	edges := []int{24 * 60}
	for _, r := range s.Rules {
		if r.Window.Validate() == nil {
			edges = append(edges, r.Window.Start, r.Window.End)
		}
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)

	name, ok := s.At(t)
	limit := t.Add(horizon)
	for x := t; x.Before(limit); {
		lt := x.In(loc)
		m := lt.Hour()*60 + lt.Minute()
		i, _ := slices.BinarySearch(edges, m+1) // first edge > m; 1440 always is
		wall := time.Duration(edges[i]-m)*time.Minute -
			time.Duration(lt.Second())*time.Second - time.Duration(lt.Nanosecond())
		next := x.Add(wall)
		if _, end := lt.ZoneBounds(); !end.IsZero() && end.Before(next) {
			next = end // the offset changes first: the wall clock jumps
		}
		lt = next.In(loc)
		if n, o := s.atLocal(lt.Weekday(), lt.Hour()*60+lt.Minute()); n != name || o != ok {
			return next.In(loc)
		}
		x = next
	}
	return time.Time{}
}

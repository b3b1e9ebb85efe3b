package policy

import (
	"strings"
	"time"
)

// Fetch is when a release may be downloaded: the pre-seed rules of its
// subscription (e.g. digital signage: fetch tonight's media off-peak).
type Fetch struct {
	// Windows are the times downloads may run, on Location's wall clock;
	// empty means any time.
	Windows []Window `yaml:"windows"`
	// Location is the site's time zone; nil means UTC.
	Location *time.Location `yaml:"-"`
	// Deliver is the deliver-by deadline; zero means none. When the next
	// window would open only at or after Deliver, waiting cannot meet the
	// deadline, so the download may start outside the window.
	Deliver time.Time `yaml:"deliver_by"`
	// Urgent releases download despite metered links and low battery.
	// Windows still apply.
	Urgent bool `yaml:"urgent"`
}

// timeFormat is how reasons show instants: local wall clock and zone.
const timeFormat = "2006-01-02 15:04 MST"

// MayDownload says whether a release's payload may be downloaded at now, and
// why not (or, when it may despite a rule, why). The rules, in order:
//
//  1. Outside every window of f it waits ("waiting for window Mon-Fri
//     22:00-06:00 (opens at 2026-03-30 22:00 CEST)"), unless the window
//     opens only at or after f.Deliver.
//  2. On a metered link or a battery below r.MinBattery (see Throttle) it
//     waits, unless f.Urgent.
//
// The reason is empty when the download simply may run.
func MayDownload(f Fetch, now time.Time, c Conditions, r PowerRules) (ok bool, reason string) {
	var notes []string
	if len(f.Windows) > 0 {
		s := Schedule{Location: f.Location}
		names := make([]string, 0, len(f.Windows))
		for _, w := range f.Windows {
			s.Rules = append(s.Rules, Rule{Window: w, Name: "open"})
			names = append(names, w.String())
		}
		if _, open := s.At(now); !open {
			windows := strings.Join(names, " or ")
			opens := s.NextChange(now)
			when := "does not open in the next 15 days"
			if !opens.IsZero() {
				when = "opens at " + opens.Format(timeFormat)
			}
			if f.Deliver.IsZero() || (!opens.IsZero() && opens.Before(f.Deliver)) {
				return false, "waiting for window " + windows + " (" + when + ")"
			}
			notes = append(notes, "outside window "+windows+" ("+when+") to meet the deliver-by time "+
				f.Deliver.In(orUTC(f.Location)).Format(timeFormat))
		}
	}
	if _, down, why := Throttle(c, r); !down {
		if !f.Urgent {
			return false, "waiting: " + why
		}
		notes = append(notes, "urgent despite "+why)
	}
	return true, strings.Join(notes, "; ")
}

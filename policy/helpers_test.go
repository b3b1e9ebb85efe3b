package policy

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones below, independent of the host's tzdata
)

func loadLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// utc reads "2006-01-02 15:04" (optionally ":05") as a UTC instant.
func utc(s string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	panic("bad test time " + s)
}

func mustWindow(t testing.TB, s string) Window {
	t.Helper()
	w, err := ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// schedule builds a Schedule from "window=name" pairs.
func schedule(t testing.TB, loc *time.Location, rules ...string) Schedule {
	t.Helper()
	s := Schedule{Location: loc}
	for _, r := range rules {
		i := len(r) - 1
		for r[i] != '=' {
			i--
		}
		s.Rules = append(s.Rules, Rule{Window: mustWindow(t, r[:i]), Name: r[i+1:]})
	}
	return s
}

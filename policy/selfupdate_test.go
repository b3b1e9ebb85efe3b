package policy

import "testing"

func TestSelfUpdateTarget(t *testing.T) {
	bad := map[string]string{"3.0": "exited"}
	for _, c := range []struct {
		own, active string
		trial       bool
		want        string
	}{
		{"1.0", "", false, ""},
		{"1.0", "1.0", false, ""},
		{"1.0", "2.0", false, "2.0"},
		{"2.0", "1.0", false, "1.0"}, // the channel moved back: follow it
		{"1.0", "2.0", true, ""},
		{"1.0", "3.0", false, ""},
	} {
		got, why := SelfUpdateTarget(c.own, c.active, bad, c.trial)
		if got != c.want || (got == "" && why == "") {
			t.Errorf("SelfUpdateTarget(%q, %q, trial %v) = %q, %q; want %q", c.own, c.active, c.trial, got, why, c.want)
		}
	}
}

package policy

import (
	"strings"
	"testing"
)

func TestModes(t *testing.T) {
	tests := []struct {
		m                     Mode
		upload, peers, origin bool
	}{
		{ModeOn, true, true, true},
		{"", true, true, true}, // zero Mode is on
		{ModeDownloadOnly, false, true, true},
		{ModeOriginOnly, false, false, true},
		{ModeOffline, false, false, false},
		{"bogus", false, false, false}, // unknown modes allow nothing
	}
	for _, tc := range tests {
		if tc.m.Upload() != tc.upload || tc.m.Peers() != tc.peers || tc.m.Origin() != tc.origin {
			t.Errorf("%q: upload %v peers %v origin %v", tc.m, tc.m.Upload(), tc.m.Peers(), tc.m.Origin())
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		err  string
	}{
		{"on", ModeOn, ""},
		{"", ModeOn, ""},
		{" ON ", ModeOn, ""},
		{"download-only", ModeDownloadOnly, ""},
		{"Origin-Only", ModeOriginOnly, ""},
		{"offline", ModeOffline, ""},
		{"off", "", `mode "off" is ambiguous: use "origin-only" (no peers, origin allowed) or "offline" (no network, bundles only)`},
		{"download_only", "", `unknown mode "download_only": want on, download-only, origin-only or offline`},
	}
	for _, tc := range tests {
		got, err := ParseMode(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMode(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v", tc.in, got, err)
		}
	}
	var m Mode
	if err := m.UnmarshalText([]byte("download-only")); err != nil || m != ModeDownloadOnly {
		t.Fatalf("UnmarshalText: %q %v", m, err)
	}
	if err := m.UnmarshalText([]byte("off")); err == nil || m != ModeDownloadOnly {
		t.Fatalf("UnmarshalText off: %q %v", m, err)
	}
}

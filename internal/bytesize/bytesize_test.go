package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"12B", 12, ""},
		{"16KiB", 16 << 10, ""},
		{"16k", 16 << 10, ""},
		{"16KB", 16000, ""},
		{"16kB", 16000, ""},
		{"4MiB", 4 << 20, ""},
		{"4MB", 4e6, ""}, // MB is decimal: see the package doc
		{"4mb", 4e6, ""},
		{"4M", 4 << 20, ""},
		{"4 MiB", 4 << 20, ""},
		{"20GiB", 20 << 30, ""},
		{"20GB", 20e9, ""},
		{"1.5TB", 1.5e12, ""},
		{"1.5TiB", 3 << 39, ""},
		{"0.5KiB", 512, ""},
		{" 2T ", 2 << 40, ""},
		{"", 0, "want a number"},
		{"MiB", 0, "want a number"},
		{"-4M", 0, "want a number"},
		{"4XB", 0, "unknown unit"},
		{"4 lots", 0, "unknown unit"},
		{"0.3B", 0, "whole number"},
		{"99999999999999999999", 0, "out of range"},
		{"9999999999999G", 0, "out of range"},
		{"1e30", 0, "out of range"},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestMarshalTextRoundTrips(t *testing.T) {
	for _, n := range []Size{0, 1, 1023, 1024, 1536, 20 << 30, 3 << 39, 1<<62 + 1} {
		b, err := n.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Size
		if err := back.UnmarshalText(b); err != nil || back != n {
			t.Errorf("%d -> %q -> %d, %v", n, b, back, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 20 << 30: "20.0 GiB", -2048: "-2.0 KiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

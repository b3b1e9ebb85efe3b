package release

import (
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.9", "1.10", -1},
		{"1.10", "1.9", 1},
		{"2", "10", -1},
		{"1.0", "1.0.1", -1},
		{"1.0.1", "1.0", 1},
		{"1.0.beta", "1.0.1", -1},
		{"1.0.1", "1.0.beta", 1},
		{"1.0-alpha", "1.0-beta", -1},
		{"1_2", "1.2", 1}, // same parts: the raw strings decide
		{"2026-03-29", "2026-03-30", -1},
		{"v1", "v2", -1},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestFormatParse(t *testing.T) {
	for _, tc := range []struct {
		in         string
		want       Ref
		hasVersion bool
	}{
		{"app@1.0", Ref{Name: "app", Version: "1.0"}, true},
		{"app", Ref{Name: "app"}, false},
		{"app@", Ref{Name: "app"}, true},
		{"app@1.0@x", Ref{Name: "app", Version: "1.0@x"}, true},
	} {
		got, hasVersion := Parse(tc.in)
		if got != tc.want || hasVersion != tc.hasVersion {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.in, got, hasVersion, tc.want, tc.hasVersion)
		}
		if tc.hasVersion && got.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q, want the input back", tc.in, got.String())
		}
	}
	if got := Format("app", "2.4.1"); got != "app@2.4.1" {
		t.Errorf("Format = %q", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"app", "1.2.3-rc.1+b7", "A_b", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName("name", ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "name is empty"},
		{".hidden", "must not start with '.'"},
		{"-x", "must not start with '.' or '-'"},
		{"a/b", "contains '/'"},
		{"a@b", "contains '@'"},
		{"caf\u00e9", "contains 'é'"},
		{strings.Repeat("x", MaxNameLen+1), "longer than 128 bytes"},
	} {
		if err := ValidateName("name", tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateName(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestValidatePathComponent(t *testing.T) {
	for _, ok := range []string{"app", "a b", "caf\u00e9", "x.tar.gz", "a..b"} {
		if err := ValidatePathComponent(ok); err != nil {
			t.Errorf("ValidatePathComponent(%q) = %v, want nil", ok, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty component"},
		{".", "not allowed"},
		{"..", "not allowed"},
		{`a\b`, "slash or backslash"},
		{"a/b", "slash or backslash"},
		{"\xff", "not valid UTF-8"},
		{"a\nb", "control character"},
		{".hidden", "starts with '.'"},
		{".git", "starts with '.'"},
		{"cafe\u0301", "not in Unicode NFC form"},
	} {
		if err := ValidatePathComponent(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidatePathComponent(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

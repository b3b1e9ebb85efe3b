package catalog_test

import (
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
)

// ValidateFilePath is the one rule publish signs by and the web seed serves
// by; these are the names the two used to disagree on.
func TestValidateFilePath(t *testing.T) {
	tests := []struct {
		path string
		want string // "" = valid
	}{
		{"bin/app", ""},
		{"caf\u00e9/men\u00fc.txt", ""},
		{"a.b/c.d", ""},
		{"cafe\u0301.txt", "not in Unicode NFC form"},
		{"dir/re\u0301sume\u0301/x", "not in Unicode NFC form"},
		{".env", "starts with '.'"},
		{"a/.git/config", "starts with '.'"},
		{"a/..", "'..' component"},
		{"a//b", "empty"},
		{"/abs", "absolute"},
		{"a\\b", "backslash"},
		{"a/\u0085b", "control character"},
		{"\xff", "not valid UTF-8"},
		{strings.Repeat("a/", 2049) + "b", "longer than"},
	}
	for _, tc := range tests {
		err := catalog.ValidateFilePath(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateFilePath(%q) = %v, want ok", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ValidateFilePath(%q) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// Package release is the vocabulary every package shares about releases:
// what a valid name, version or file name is, how versions are ordered, and
// the name@version form that names one release in logs, keys and arguments.
package release

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameLen is the most bytes of a release name, version, channel or other
// name checked by ValidateName.
const MaxNameLen = 128

// Ref names one release.
type Ref struct {
	Name    string
	Version string
}

// String is the release's name@version form (Format).
func (r Ref) String() string { return Format(r.Name, r.Version) }

// Format joins a name and a version into the name@version form.
func Format(name, version string) string { return name + "@" + version }

// Parse splits "name@version"; without an '@' the whole of s is the name
// and hasVersion is false. It does not validate the parts (ValidateName).
func Parse(s string) (r Ref, hasVersion bool) {
	r.Name, r.Version, hasVersion = strings.Cut(s, "@")
	return r, hasVersion
}

// ValidateName checks a release name or version: 1–128 bytes of letters,
// digits, '.', '_', '+', '-', not starting with '.' or '-'. This keeps
// names safe as path components, object keys and URL segments.
func ValidateName(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", kind)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%s %q is longer than %d bytes", kind, s, MaxNameLen)
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%s %q must not start with '.' or '-'", kind, s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.' || r == '_' || r == '+' || r == '-':
		default:
			return fmt.Errorf("%s %q contains %q: use letters, digits, '.', '_', '+' or '-'", kind, s, r)
		}
	}
	return nil
}

// ValidatePathComponent checks one file or directory name inside a release:
// not empty, "." or "..", no slash or backslash, valid UTF-8 and no control
// characters, so that no client maps it to another file or escapes its
// download directory with it, and it is a portable catalog key. No leading
// '.' either (dotfiles and dot-directories hide on disk and are what keys
// and VCS metadata look like), and Unicode NFC: macOS writes names
// decomposed (NFD) and Linux keeps bytes, so two names that look the same
// would be two files on one system and one on another. Publish and the web
// seed apply this one rule, so a release that publishes is servable.
func ValidatePathComponent(c string) error {
	switch {
	case c == "":
		return errors.New("path has an empty component")
	case c == "." || c == "..":
		return fmt.Errorf("path component %q is not allowed", c)
	case strings.ContainsAny(c, `/\`):
		return fmt.Errorf("path component %q contains a slash or backslash", c)
	case !utf8.ValidString(c):
		return fmt.Errorf("path component %q is not valid UTF-8", c)
	case strings.ContainsFunc(c, unicode.IsControl):
		return fmt.Errorf("path component %q contains a control character", c)
	case c[0] == '.':
		return fmt.Errorf("path component %q starts with '.': dotfiles and dot-directories are not published or served", c)
	case !norm.NFC.IsNormalString(c):
		return fmt.Errorf("path component %q is not in Unicode NFC form (rename it to %q)", c, norm.NFC.String(c))
	}
	return nil
}

// CompareVersions orders version strings: dot-, dash-, plus- or
// underscore-separated numeric parts compare as numbers, others as
// strings, and a numeric part sorts after a word, so 1.10 sorts after 1.9.
// The catalog lists releases in this order too.
func CompareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.ParseUint(pa[i], 10, 64)
		nb, eb := strconv.ParseUint(pb[i], 10, 64)
		switch {
		case ea == nil && eb == nil:
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
		case ea == nil:
			return 1
		case eb == nil:
			return -1
		default:
			if c := strings.Compare(pa[i], pb[i]); c != 0 {
				return c
			}
		}
	}
	if c := cmp.Compare(len(pa), len(pb)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

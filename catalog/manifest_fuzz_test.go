package catalog_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// fuzzManifestSeed is a valid manifest as publish writes it.
const fuzzManifestSeed = `{
  "format": 1,
  "name": "app",
  "version": "1.0",
  "files": [
    {
      "path": "bin/app",
      "size": 20971520,
      "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    },
    {
      "path": "README",
      "size": 0,
      "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    }
  ],
  "total_size": 20971520,
  "infohash": "0123456789abcdef0123456789abcdef01234567",
  "piece_length": 262144,
  "created": "2026-11-25T10:00:00Z",
  "expires": "2027-11-25T10:00:00+01:00",
  "labels": {
    "team": "retail"
  },
  "tenant": "acme",
  "regions": [
    "eu",
    "us-east"
  ]
}
`

// FuzzParseManifest checks that ParseManifest never panics and that what
// it accepts is valid and survives MarshalManifest and ParseManifest
// unchanged: the manifest an agent checks is the one the publisher signed.
func FuzzParseManifest(f *testing.F) {
	valid := []byte(fuzzManifestSeed)
	if _, err := catalog.ParseManifest(valid); err != nil {
		f.Fatalf("seed manifest: %v", err)
	}
	edit := func(old, new string) []byte {
		if !strings.Contains(fuzzManifestSeed, old) {
			f.Fatalf("seed edit: %q not in the seed", old)
		}
		return []byte(strings.Replace(fuzzManifestSeed, old, new, 1))
	}
	for _, b := range [][]byte{
		valid,
		[]byte(strings.Join(strings.Fields(fuzzManifestSeed), "")), // compact
		nil,
		[]byte("null"),
		[]byte("{}"),
		[]byte("[]"),
		[]byte(`"manifest"`),
		valid[:len(valid)/2],
		append(bytes.Clone(valid), "{}"...), // trailing data
		edit(`"tenant"`, `"unknown": 1, "tenant"`),                                   // unknown field
		edit(`"format": 1`, `"format": 2`),                                           // unsupported format
		edit(`"name": "app"`, `"NAME": "app"`),                                       // case-folded key
		edit(`"name": "app"`, `"name": "../app"`),                                    // path in a name
		edit(`"version": "1.0"`, `"version": ".hidden"`),                             // leading dot
		edit(`"path": "README"`, `"path": "BIN/APP"`),                                // duplicate, other case
		edit(`"path": "README"`, `"path": "bin/app/x"`),                              // file inside a file
		edit(`"path": "README"`, `"path": "/etc/passwd"`),                            // absolute
		edit(`"path": "README"`, `"path": "a/../../b"`),                              // escapes
		edit(`"path": "README"`, `"path": "a\\b"`),                                   // backslash
		edit(`"path": "README"`, `"path": "a\u0000b"`),                               // NUL
		edit(`"path": "README"`, "\"path\": \"\xff\xfe\""),                           // invalid UTF-8
		edit(`"size": 0`, `"size": -1`),                                              // negative size
		edit(`"size": 0`, `"size": 17592186044416`),                                  // over the release limit
		edit(`"size": 0`, `"size": 1e3`),                                             // float size
		edit(`"size": 0`, `"size": 9223372036854775808`),                             // int64 overflow
		edit(`"total_size": 20971520`, `"total_size": 20971521`),                     // wrong total
		edit(`"sha256": "e3b0`, `"sha256": "E3B0`),                                   // upper-case hex
		edit(`"infohash": "0123`, `"infohash": "01`),                                 // short infohash
		edit(`"piece_length": 262144`, `"piece_length": 262145`),                     // not a power of two
		edit(`"piece_length": 262144`, `"piece_length": 8192`),                       // too small
		edit(`"created": "2026-11-25T10:00:00Z"`, `"created": null`),                 // no creation time
		edit(`"2027-11-25T10:00:00+01:00"`, `"2026-11-25T10:00:00Z"`),                // expires at creation
		edit(`"2027-11-25T10:00:00+01:00"`, `"9999-12-31T23:59:59.999999999-23:59"`), // extreme time
		edit(`"labels": {`, `"labels": {},"x":{`),
		edit(`"labels": {`, `"labels": null, "x": {`),
		edit(`"regions": [`, `"regions": [], "y": [`),
		edit(`"us-east"`, `"us east"`),
		edit(`"tenant": "acme"`, `"tenant": "\ud800"`), // lone surrogate
		[]byte(mediaManifestSeed),                      // media_test.go
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := catalog.ParseManifest(b)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseManifest returned a manifest with error %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted manifest fails Validate: %v", err)
		}
		out, err := catalog.MarshalManifest(m)
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		m2, err := catalog.ParseManifest(out)
		if err != nil {
			t.Fatalf("re-marshalled manifest is refused: %v\n%s", err, out)
		}
		if !sameManifest(m, m2) {
			t.Fatalf("manifest changed across MarshalManifest/ParseManifest:\nbefore %+v\nafter  %+v", m, m2)
		}
		// The canonical encoding is a fixed point.
		out2, err := catalog.MarshalManifest(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("MarshalManifest is not stable:\n%s\n%s", out, out2)
		}
	})
}

// sameManifest compares manifests field by field: times by instant and
// zone offset, and an empty map or list the same as none (the encoding
// omits both).
func sameManifest(a, b *catalog.Manifest) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	if !sameTime(a.Created, b.Created) || !sameTime(a.Expires, b.Expires) {
		return false
	}
	norm := func(m *catalog.Manifest) catalog.Manifest {
		c := *m
		c.Created, c.Expires = time.Time{}, time.Time{}
		if len(c.Labels) == 0 {
			c.Labels = nil
		}
		if len(c.Regions) == 0 {
			c.Regions = nil
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

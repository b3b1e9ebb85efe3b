package torrentfile_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
)

const testPieceLength = 16 << 10

// goodInfo is a valid v1 info dictionary for goodManifest: two files,
// 40000 + 10 bytes in 16 KiB pieces (3 pieces).
func goodInfo() metainfo.Info {
	return metainfo.Info{
		Name:        "1.0",
		PieceLength: testPieceLength,
		Pieces:      bytes.Repeat([]byte{0xab}, 3*20),
		Files: []metainfo.FileInfo{
			{Length: 40000, Path: []string{"bin", "app"}},
			{Length: 10, Path: []string{"README"}},
		},
	}
}

// manifestFor returns a valid manifest matching goodInfo, whose infohash is
// that of infoBytes (so that a test reaches the check it is aimed at).
func manifestFor(infoBytes []byte) *catalog.Manifest {
	sum := sha1.Sum(infoBytes)
	return &catalog.Manifest{
		Format:  1,
		Name:    "app",
		Version: "1.0",
		Files: []catalog.ManifestFile{
			{Path: "bin/app", Size: 40000, SHA256: strings.Repeat("1", 64)},
			{Path: "README", Size: 10, SHA256: strings.Repeat("2", 64)},
		},
		TotalSize:   40010,
		InfoHash:    hex.EncodeToString(sum[:]),
		PieceLength: testPieceLength,
		Created:     time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func encodeInfo(t testing.TB, info any) []byte {
	t.Helper()
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeTorrent(t testing.TB, infoBytes []byte) []byte {
	t.Helper()
	mi := metainfo.MetaInfo{InfoBytes: infoBytes, CreatedBy: "test", UrlList: []string{"http://127.0.0.1:1/data/app/"}}
	b, err := bencode.Marshal(&mi)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAcceptsGood(t *testing.T) {
	infoBytes := encodeInfo(t, goodInfo())
	m := manifestFor(infoBytes)
	if err := m.Validate(); err != nil {
		t.Fatalf("test manifest invalid: %v", err)
	}
	tor, err := torrentfile.Parse(encodeTorrent(t, infoBytes), m)
	if err != nil {
		t.Fatalf("Parse of a good torrent: %v", err)
	}
	if tor.InfoHash.HexString() != m.InfoHash {
		t.Errorf("InfoHash = %s, want %s", tor.InfoHash.HexString(), m.InfoHash)
	}
	if len(tor.Info.Files) != 2 || tor.Info.Name != "1.0" {
		t.Errorf("parsed info = %+v", tor.Info)
	}
}

func TestParseRefusesHostile(t *testing.T) {
	tests := []struct {
		name string
		// mutate changes the info dictionary; the manifest's infohash then
		// follows the mutated info unless keepHash is set.
		mutate func(*metainfo.Info)
		// raw, if set, replaces the info dictionary with this value.
		raw any
		// manifest, if set, changes the manifest after the infohash is set.
		manifest func(*catalog.Manifest)
		keepHash bool
		want     string
	}{
		{
			name:     "infohash mismatch",
			mutate:   func(i *metainfo.Info) { i.Pieces[0] ^= 1 },
			keepHash: true,
			want:     "does not match the signed manifest",
		},
		{
			name:   "name is not the version",
			mutate: func(i *metainfo.Info) { i.Name = "2.0" },
			want:   `torrent name "2.0" is not the release version "1.0"`,
		},
		{
			name:   "name.utf-8 differs from name",
			mutate: func(i *metainfo.Info) { i.NameUtf8 = "../2.0" },
			want:   "name.utf-8",
		},
		{
			name:   "dotdot component",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"..", "app"} },
			want:   `torrent file path "../app" is unsafe`,
		},
		{
			name:   "dot component",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"bin", ".", "app"} },
			want:   "is unsafe",
		},
		{
			name:   "empty component (absolute-ish path)",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"", "etc", "passwd"} },
			want:   `torrent file path "/etc/passwd" is unsafe`,
		},
		{
			name:   "component with a slash",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"/etc/passwd"} },
			want:   "is unsafe",
		},
		{
			name:   "component with a backslash",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{`..\..\x`} },
			want:   "is unsafe",
		},
		{
			name:   "component with NUL",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"bin", "a\x00pp"} },
			want:   "is unsafe",
		},
		{
			name:   "empty path",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{} },
			want:   "empty key",
		},
		{
			name:   "control character",
			mutate: func(i *metainfo.Info) { i.Files[0].Path = []string{"bin", "a\x01p"} },
			want:   "control character",
		},
		{
			name: "duplicate paths",
			mutate: func(i *metainfo.Info) {
				i.Files[1].Path = []string{"bin", "app"}
			},
			want: `torrent file 1 is bin/app (10 bytes), the manifest says README (10 bytes)`,
		},
		{
			name:   "path differs from the manifest",
			mutate: func(i *metainfo.Info) { i.Files[1].Path = []string{"README.evil"} },
			want:   "the manifest says README",
		},
		{
			name:   "size differs from the manifest",
			mutate: func(i *metainfo.Info) { i.Files[1].Length = 11 },
			want:   "the manifest says README (10 bytes)",
		},
		{
			name:   "extra file",
			mutate: func(i *metainfo.Info) { i.Files = append(i.Files, metainfo.FileInfo{Length: 1, Path: []string{"x"}}) },
			want:   "torrent lists 3 files, the manifest 2",
		},
		{
			name: "pad file",
			mutate: func(i *metainfo.Info) {
				i.Files = []metainfo.FileInfo{
					i.Files[0],
					{Length: 10, Path: []string{".pad", "10"}, ExtendedFileAttrs: metainfo.ExtendedFileAttrs{Attr: "p"}},
				}
			},
			want: `attributes "p"`,
		},
		{
			name: "pad attr on a manifest file",
			mutate: func(i *metainfo.Info) {
				i.Files[1].Attr = "p"
			},
			want: "pad files and symlinks are refused",
		},
		{
			name: "symlink attr",
			mutate: func(i *metainfo.Info) {
				i.Files[1].Attr = "l"
				i.Files[1].SymlinkPath = []string{"..", "..", "etc", "passwd"}
			},
			want: `attributes "l"`,
		},
		{
			name: "symlink path without attr",
			mutate: func(i *metainfo.Info) {
				i.Files[1].SymlinkPath = []string{"etc", "passwd"}
			},
			want: "pad files and symlinks are refused",
		},
		{
			name: "executable attr",
			mutate: func(i *metainfo.Info) {
				i.Files[0].Attr = "x"
			},
			want: `attributes "x"`,
		},
		{
			name: "path.utf-8 differs from path",
			mutate: func(i *metainfo.Info) {
				i.Files[1].PathUtf8 = []string{"..", "README"}
			},
			want: "path.utf-8 that differs from its path",
		},
		{
			name: "path.utf-8 differs, path unsafe",
			mutate: func(i *metainfo.Info) {
				i.Files[1].Path = []string{"..", "README"}
				i.Files[1].PathUtf8 = []string{"README"}
			},
			want: "path.utf-8 that differs from its path",
		},
		{
			name:   "one piece hash too many",
			mutate: func(i *metainfo.Info) { i.Pieces = append(i.Pieces, make([]byte, 20)...) },
			want:   "torrent has 80 bytes of piece hashes, want 60",
		},
		{
			name:   "one piece hash too few",
			mutate: func(i *metainfo.Info) { i.Pieces = i.Pieces[:40] },
			want:   "torrent has 40 bytes of piece hashes, want 60",
		},
		{
			name:   "piece hashes not a multiple of 20",
			mutate: func(i *metainfo.Info) { i.Pieces = i.Pieces[:59] },
			want:   "59 bytes of piece hashes",
		},
		{
			name:   "piece length differs",
			mutate: func(i *metainfo.Info) { i.PieceLength = 32 << 10; i.Pieces = i.Pieces[:40] },
			want:   "piece length 32768 differs from the manifest's 16384",
		},
		{
			name: "single-file mode",
			mutate: func(i *metainfo.Info) {
				i.Files = nil
				i.Length = 40010
			},
			want: "torrent is single-file",
		},
		{
			name:   "v2 meta version",
			mutate: func(i *metainfo.Info) { i.MetaVersion = 2 },
			want:   "v2 fields",
		},
		{
			name: "hybrid v1+v2 with file tree",
			raw: map[string]any{
				"name": "1.0", "piece length": testPieceLength, "pieces": string(bytes.Repeat([]byte{0xab}, 60)),
				"files": []any{
					map[string]any{"length": 40000, "path": []string{"bin", "app"}},
					map[string]any{"length": 10, "path": []string{"README"}},
				},
				"meta version": 2,
				"file tree": map[string]any{
					"README": map[string]any{"": map[string]any{"length": 10, "pieces root": strings.Repeat("r", 32)}},
					"bin": map[string]any{"app": map[string]any{"": map[string]any{
						"length": 40000, "pieces root": strings.Repeat("s", 32)}}},
				},
			},
			want: "only plain v1 torrents are accepted",
		},
		{
			name: "files of the wrong type",
			raw: map[string]any{
				"name": "1.0", "piece length": testPieceLength, "pieces": string(make([]byte, 60)),
				"files": "not a list",
			},
			want: "decode torrent info",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := goodInfo()
			good := manifestFor(encodeInfo(t, info))
			var infoBytes []byte
			if tc.raw != nil {
				infoBytes = encodeInfo(t, tc.raw)
			} else {
				if tc.mutate != nil {
					tc.mutate(&info)
				}
				infoBytes = encodeInfo(t, info)
			}
			m := manifestFor(infoBytes)
			if tc.keepHash {
				m.InfoHash = good.InfoHash
			}
			if tc.manifest != nil {
				tc.manifest(m)
			}
			tor, err := torrentfile.Parse(encodeTorrent(t, infoBytes), m)
			if err == nil {
				t.Fatalf("Parse accepted a hostile torrent: %+v", tor.Info)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

// Manifests with duplicate or nested paths never reach Parse: agents get
// manifests from ParseManifest, which validates them.
func TestManifestRefusesDuplicatePaths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second string
		want   string
	}{
		{"exact duplicate", "bin/app", `file path "bin/app" appears twice`},
		{"case duplicate", "BIN/App", `file path "BIN/App" appears twice`},
		{"file and directory", "bin/app/x", `file "bin/app/x" is inside "bin/app", which is also a file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := manifestFor(encodeInfo(t, goodInfo()))
			m.Files[1].Path = tc.second
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tc.want)
			}
			b, mErr := catalog.MarshalManifest(m)
			if mErr != nil {
				t.Fatal(mErr)
			}
			if _, err := catalog.ParseManifest(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	m := manifestFor(encodeInfo(t, goodInfo()))
	good := encodeTorrent(t, encodeInfo(t, goodInfo()))
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "decode torrent"},
		{"not bencode", []byte("<html>hello</html>"), "decode torrent"},
		{"truncated", good[:len(good)/2], "decode torrent"},
		{"trailing data", append(bytes.Clone(good), "junk"...), "decode torrent"},
		{"no info", []byte("d8:announce3:urle"), "does not match the signed manifest"},
		{"too large", make([]byte, catalog.MaxTorrentSize+1), "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := torrentfile.Parse(tc.b, m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and never accepts a torrent
// that disagrees with the manifest it was checked against.
func FuzzParse(f *testing.F) {
	infoBytes := encodeInfo(f, goodInfo())
	m := manifestFor(infoBytes)
	good := encodeTorrent(f, infoBytes)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("de"))
	f.Add([]byte("d4:infod4:name3:1.0ee"))
	f.Add([]byte("d4:infod5:filesld6:lengthi10e4:pathl2:..6:READMEeee4:name3:1.012:piece lengthi16384e6:pieces0:ee"))
	f.Add([]byte("d4:infod12:meta versioni2e4:name3:1.0ee"))
	f.Add([]byte("d4:infoli1ei2eee"))
	f.Add([]byte("d4:infod6:lengthi-1e4:name3:1.0ee"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tor, err := torrentfile.Parse(b, m)
		if err != nil {
			return
		}
		// Whatever got through must agree with the manifest.
		if tor.InfoHash.HexString() != m.InfoHash {
			t.Fatalf("accepted infohash %s, manifest says %s", tor.InfoHash.HexString(), m.InfoHash)
		}
		if tor.Info.Name != m.Version || len(tor.Info.Files) != len(m.Files) {
			t.Fatalf("accepted info %+v", tor.Info)
		}
		for i, fi := range tor.Info.Files {
			if strings.Join(fi.BestPath(), "/") != m.Files[i].Path || fi.Length != m.Files[i].Size {
				t.Fatalf("accepted file %d %+v, manifest %+v", i, fi, m.Files[i])
			}
		}
	})
}

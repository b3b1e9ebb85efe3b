// Package torrentfile parses .torrent files from a catalog and checks them
// against the signed release manifest. Agents and the origin both use it, so
// a hostile torrent is refused the same way everywhere, before any byte is
// written to disk.
package torrentfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
)

// Torrent is a parsed and checked torrent.
type Torrent struct {
	MetaInfo *metainfo.MetaInfo
	Info     *metainfo.Info
	InfoHash metainfo.Hash
}

// Parse decodes b and checks it against the manifest m: the infohash, the
// name, the piece geometry and every file's path and size must agree, and
// only plain v1 torrents are accepted, with pad files only where the
// manifest's media layout puts them (catalog.Media).
func Parse(b []byte, m *catalog.Manifest) (*Torrent, error) {
	if len(b) > catalog.MaxTorrentSize {
		return nil, fmt.Errorf("torrent is larger than %d bytes", catalog.MaxTorrentSize)
	}
	mi, err := metainfo.Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode torrent: %w", err)
	}
	ih := mi.HashInfoBytes()
	if ih.HexString() != m.InfoHash {
		return nil, fmt.Errorf("torrent infohash %s does not match the signed manifest's %s", ih.HexString(), m.InfoHash)
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(mi.InfoBytes, &info); err != nil {
		return nil, fmt.Errorf("decode torrent info: %w", err)
	}
	if err := Check(&info, m); err != nil {
		return nil, err
	}
	return &Torrent{MetaInfo: mi, Info: &info, InfoHash: ih}, nil
}

// Check compares an info dictionary with the manifest.
func Check(info *metainfo.Info, m *catalog.Manifest) error {
	if info.HasV2() {
		return errors.New("torrent has v2 fields: only plain v1 torrents are accepted")
	}
	if info.Name != m.Version {
		return fmt.Errorf("torrent name %q is not the release version %q", info.Name, m.Version)
	}
	if info.NameUtf8 != "" && info.NameUtf8 != info.Name {
		// Clients name the download directory after name.utf-8 when present.
		return fmt.Errorf("torrent name.utf-8 %q differs from its name %q", info.NameUtf8, info.Name)
	}
	if info.PieceLength != m.PieceLength {
		return fmt.Errorf("torrent piece length %d differs from the manifest's %d", info.PieceLength, m.PieceLength)
	}
	if len(info.Files) == 0 {
		return errors.New("torrent is single-file: swarmship torrents always list their files")
	}
	offsets, torrentSize := m.Layout()
	if m.Media == nil && len(info.Files) != len(m.Files) {
		return fmt.Errorf("torrent lists %d files, the manifest %d", len(info.Files), len(m.Files))
	}
	var total int64
	j := 0 // the manifest file expected next
	for i, f := range info.Files {
		if f.Attr == "p" && m.Media != nil {
			// A pad must fill exactly the gap before the next payload
			// file, under the name BEP 47 suggests.
			want := fmt.Sprint(f.Length)
			if len(f.Path) != 2 || f.Path[0] != ".pad" || f.Path[1] != want || len(f.PathUtf8) > 0 || len(f.SymlinkPath) > 0 {
				return fmt.Errorf("torrent pad file %d has path %q, want .pad/%s", i, strings.Join(f.Path, "/"), want)
			}
			if j >= len(m.Files) || f.Length <= 0 || total+f.Length != offsets[j] {
				return fmt.Errorf("torrent pad file %d (%d bytes at %d) is not where the media layout puts one", i, f.Length, total)
			}
			total += f.Length
			continue
		}
		if j >= len(m.Files) {
			return fmt.Errorf("torrent lists more files than the manifest's %d", len(m.Files))
		}
		if len(f.PathUtf8) > 0 && strings.Join(f.PathUtf8, "/") != strings.Join(f.Path, "/") {
			return fmt.Errorf("torrent file %d has a path.utf-8 that differs from its path", i)
		}
		if f.Attr != "" || len(f.SymlinkPath) > 0 {
			return fmt.Errorf("torrent file %d has attributes %q (pad files and symlinks are refused)", i, f.Attr)
		}
		p := strings.Join(f.BestPath(), "/")
		for _, c := range f.BestPath() {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "/\\\x00") {
				return fmt.Errorf("torrent file path %q is unsafe", p)
			}
		}
		if err := catalog.ValidateFilePath(p); err != nil {
			return fmt.Errorf("torrent: %w", err)
		}
		if p != m.Files[j].Path || f.Length != m.Files[j].Size {
			return fmt.Errorf("torrent file %d is %s (%d bytes), the manifest says %s (%d bytes)", i, p, f.Length, m.Files[j].Path, m.Files[j].Size)
		}
		if total != offsets[j] {
			return fmt.Errorf("torrent file %s starts at %d, the media layout says %d (a pad file is missing)", p, total, offsets[j])
		}
		total += f.Length
		j++
	}
	if j != len(m.Files) || total != torrentSize {
		return fmt.Errorf("torrent lists %d of the manifest's %d files (%d of %d bytes)", j, len(m.Files), total, torrentSize)
	}
	wantPieces := (total + info.PieceLength - 1) / info.PieceLength
	if int64(len(info.Pieces)) != wantPieces*20 {
		return fmt.Errorf("torrent has %d bytes of piece hashes, want %d for %d bytes", len(info.Pieces), wantPieces*20, total)
	}
	return nil
}

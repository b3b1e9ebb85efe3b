package publish

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/piecehash"
	"github.com/swarmship/swarmship/internal/release"
)

// variantFiles lays out a watermarked release: every file of the B
// directory that differs from the A directory's file of the same path is
// a segment with two variants, stored in the one torrent as
// variants/a/<path> (from the A directory, opts.Paths[0]) and
// variants/b/<path>; the A directory's other files (playlists) stay at
// their paths. One torrent for both variants, not one per variant: the
// playlists and everything unmarked are shared by every site, a site's
// agent needs one swarm, and each variant's files still swarm among the
// sites that picked them (the others never request those pieces). Segment
// positions are in path order (seg000.ts, seg001.ts, ... for HLS).
func variantFiles(opts PublishOptions, files []piecehash.FileEntry) ([]piecehash.FileEntry, *catalog.Watermark, error) {
	if opts.VariantB == "" || opts.Codes == "" {
		return nil, nil, errors.New("watermark variants need both --variant-b and --codes")
	}
	if err := release.ValidateName("--codes", opts.Codes); err != nil {
		return nil, nil, err
	}
	if len(opts.Paths) != 1 {
		return nil, nil, errors.New("with --variant-b give exactly one directory: the one holding variant A")
	}
	if fi, err := os.Stat(opts.Paths[0]); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("with --variant-b, %s must be a directory (variant A)", opts.Paths[0])
	}
	bFiles, err := CollectFiles([]string{opts.VariantB})
	if err != nil {
		return nil, nil, fmt.Errorf("--variant-b: %w", err)
	}
	byPath := make(map[string]int, len(files))
	for i, f := range files {
		byPath[path.Join(f.Path...)] = i
	}
	w := &catalog.Watermark{Codes: opts.Codes}
	var out []piecehash.FileEntry
	isSegment := map[int]bool{}
	for _, bf := range bFiles {
		p := path.Join(bf.Path...)
		if strings.HasPrefix(p, catalog.VariantPrefix) {
			return nil, nil, fmt.Errorf("--variant-b: %s: paths under %s are reserved", p, catalog.VariantPrefix)
		}
		i, ok := byPath[p]
		if !ok {
			return nil, nil, fmt.Errorf("--variant-b has %s, which variant A (%s) lacks", p, opts.Paths[0])
		}
		a := files[i]
		if same, err := sameBytes(a, bf); err != nil {
			return nil, nil, err
		} else if same {
			continue // a playlist or other unmarked file both runs wrote alike
		}
		isSegment[i] = true
		a.Path = append([]string{"variants", "a"}, a.Path...)
		bf.Path = append([]string{"variants", "b"}, bf.Path...)
		out = append(out, a, bf)
		w.Segments = append(w.Segments, catalog.WatermarkSegment{Path: p, A: path.Join(a.Path...), B: path.Join(bf.Path...)})
	}
	if len(w.Segments) == 0 {
		return nil, nil, fmt.Errorf("--variant-b %s: no file differs from variant A", opts.VariantB)
	}
	for i, f := range files {
		if !isSegment[i] {
			if strings.HasPrefix(path.Join(f.Path...), catalog.VariantPrefix) {
				return nil, nil, fmt.Errorf("%s: paths under %s are reserved in a watermarked release", path.Join(f.Path...), catalog.VariantPrefix)
			}
			out = append(out, f)
		}
	}
	piecehash.SortFiles(out)
	if err := piecehash.CheckUniquePaths(out); err != nil {
		return nil, nil, err
	}
	return out, w, nil
}

// sameBytes reports whether two files hold the same bytes.
func sameBytes(a, b piecehash.FileEntry) (bool, error) {
	if a.Size != b.Size {
		return false, nil
	}
	x, err := os.ReadFile(a.Source)
	if err != nil {
		return false, err
	}
	y, err := os.ReadFile(b.Source)
	if err != nil {
		return false, err
	}
	return bytes.Equal(x, y), nil
}

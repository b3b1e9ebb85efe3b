// Package deltapair writes a realistic pair of release trees for delta
// benchmarks and tests, with no downloads: v1 of Size bytes in 200 files of
// deterministic pseudo-random content (incompressible), and v2 made from it
// the way a new build of an application differs from the last one: 3 files
// changed in place, a large file (Size/16) with Size/1024 bytes inserted in
// its middle, one file renamed, 10 files added and 5 removed. The same Spec
// always writes the same bytes, so scripts/bench/delta, scripts/testbed and
// tests can each build it on their own machine.
package deltapair

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/swarmship/swarmship/internal/delta"
)

// Spec says how big a pair to write. Zero fields take the figures.
type Spec struct {
	Size  int64  // bytes of v1; default 1 GiB
	Files int    // files in v1; default 200 (at least 20)
	Seed  uint64 // content and layout; default 1
}

// Pair is what Generate wrote and what a delta method should move.
type Pair struct {
	V1      string `json:"v1"` // the two release roots
	V2      string `json:"v2"`
	V1Size  int64  `json:"v1_size"`
	V2Size  int64  `json:"v2_size"`
	V1Files int    `json:"v1_files"`
	V2Files int    `json:"v2_files"`
	// ChangedBytes are the bytes of v2 found nowhere in v1: the rewritten
	// regions, the inserted bytes and the added files. A perfect delta
	// moves this much.
	ChangedBytes int64 `json:"changed_bytes"`
	// ChangedRegions counts the separate runs of changed bytes (one per
	// rewrite, the insertion, one per added file): delivery by pieces
	// may fetch up to one piece more per region.
	ChangedRegions int `json:"changed_regions"`
	// ChangedFileBytes is the size of the v2 files that are not
	// byte-for-byte a file of v1 (the changed, the grown and the added
	// ones): what a method that reuses whole files only must move.
	ChangedFileBytes int64 `json:"changed_file_bytes"`
	// Changes lists each change in words, for reports.
	Changes []string `json:"changes"`

	// origin maps each v2 file to where its bytes lie in v1.
	origin map[string][]delta.Range
	sizes  map[string]int64
}

// Hints returns the exact delta hints of v2 against v1 published as
// version base, with v2's files in the given order (the release's manifest
// order, slash paths): what a perfect matcher would find, for tests and
// benchmarks of the code that uses hints.
func (p *Pair) Hints(base string, order []string) (*delta.Hints, error) {
	h := &delta.Hints{Base: base}
	var off int64
	for _, path := range order {
		size, ok := p.sizes[path]
		if !ok {
			return nil, fmt.Errorf("deltapair: %s is not a file of v2", path)
		}
		for _, r := range p.origin[path] {
			r.Off += off
			if n := len(h.Ranges); n > 0 {
				last := &h.Ranges[n-1]
				if last.Off+last.Len == r.Off && last.BasePath == r.BasePath && last.BaseOff+last.Len == r.BaseOff {
					last.Len += r.Len
					continue
				}
			}
			h.Ranges = append(h.Ranges, r)
		}
		off += size
	}
	return h, nil
}

// mtime gives every file of v1 one time and every file of v2 a later one,
// as two builds would: tools that skip files by size and time (rsync's
// quick check) then look at each file, as they would in real use.
var mtime = map[bool]time.Time{
	false: time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC),
	true:  time.Date(2026, 2, 2, 12, 0, 0, 0, time.UTC),
}

// blockSize is the unit of the content stream: block k of stream s is a
// ChaCha8 stream keyed by (seed, s, k), so any byte range of any stream can
// be written without writing what precedes it.
const blockSize = 64 << 10

// segment is a run of bytes [off, off+n) of content stream id.
type segment struct {
	stream uint64
	off, n int64
}

type file struct {
	path string
	segs []segment
}

func (f file) size() int64 {
	var n int64
	for _, s := range f.segs {
		n += s.n
	}
	return n
}

// Generate writes the pair under dir (dir/v1 and dir/v2, which must not
// exist yet) and describes it.
func Generate(dir string, spec Spec) (*Pair, error) {
	if spec.Size == 0 {
		spec.Size = 1 << 30
	}
	if spec.Files == 0 {
		spec.Files = 200
	}
	if spec.Seed == 0 {
		spec.Seed = 1
	}
	if spec.Files < 20 {
		return nil, fmt.Errorf("deltapair: %d files; want at least 20", spec.Files)
	}
	if spec.Size < int64(spec.Files)*4096 {
		return nil, fmt.Errorf("deltapair: %d bytes is too small for %d files", spec.Size, spec.Files)
	}
	v1, v2, p := layout(spec)
	p.V1, p.V2 = filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	for _, t := range []struct {
		root  string
		files []file
	}{{p.V1, v1}, {p.V2, v2}} {
		if _, err := os.Lstat(t.root); err == nil {
			return nil, fmt.Errorf("deltapair: %s already exists", t.root)
		}
		for _, f := range t.files {
			if err := writeFile(filepath.Join(t.root, filepath.FromSlash(f.path)), spec.Seed, f.segs, mtime[t.root == p.V2]); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// layout decides the files of both versions.
func layout(spec Spec) (v1, v2 []file, p *Pair) {
	rng := rand.New(rand.NewPCG(spec.Seed, 0x64656c7461)) // "delta"
	dirs := []string{"bin", "lib", "lib/plugins", "share/assets", "share/locale", "share/doc", "data", "data/models"}
	big := spec.Size / 16
	insert := max(spec.Size/1024, 1)
	rewrite := max(spec.Size/16384, 1)

	// Sizes of the other files: log-normal like a real tree (many small
	// files, a few large), scaled to fill Size, at least 1 KiB each.
	n := spec.Files - 1
	sizes := make([]int64, n)
	weights := make([]float64, n)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(rng.NormFloat64())
		sum += weights[i]
	}
	rest := spec.Size - big
	var used int64
	for i := range sizes {
		sizes[i] = max(int64(float64(rest-int64(n)*1024)*weights[i]/sum)+1024, 1024)
		used += sizes[i]
	}
	sizes[n-1] += rest - used // exact total
	stream := uint64(0)
	next := func() uint64 { stream++; return stream }
	for i := range n {
		d := dirs[i%len(dirs)]
		v1 = append(v1, file{path: fmt.Sprintf("%s/f%03d.bin", d, i), segs: []segment{{next(), 0, sizes[i]}}})
	}
	bigIdx := len(v1)
	v1 = append(v1, file{path: "data/big.pack", segs: []segment{{next(), 0, big}}})

	p = &Pair{V1Files: len(v1)}
	for _, f := range v1 {
		p.V1Size += f.size()
	}
	// Pick the files to change, rename and remove among those large enough
	// to hold a rewrite in their middle.
	order := rng.Perm(n)
	var pick []int
	for _, i := range order {
		if sizes[i] >= 3*rewrite {
			pick = append(pick, i)
		}
	}
	changed, renamed, removed := pick[:3], pick[3], pick[4:9]

	v2 = slices.Clone(v1)
	for _, i := range changed {
		f := v1[i]
		sz := f.size()
		off := sz/2 - rewrite/2
		v2[i] = file{path: f.path, segs: []segment{{f.segs[0].stream, 0, off}, {next(), 0, rewrite}, {f.segs[0].stream, off + rewrite, sz - off - rewrite}}}
		p.ChangedBytes += rewrite
		p.ChangedFileBytes += sz
		p.Changes = append(p.Changes, fmt.Sprintf("changed in place: %s (%d bytes rewritten at offset %d)", f.path, rewrite, off))
	}
	bf := v1[bigIdx]
	mid := big / 2
	v2[bigIdx] = file{path: bf.path, segs: []segment{{bf.segs[0].stream, 0, mid}, {next(), 0, insert}, {bf.segs[0].stream, mid, big - mid}}}
	p.ChangedBytes += insert
	p.ChangedFileBytes += big + insert
	p.Changes = append(p.Changes, fmt.Sprintf("grown: %s (%d bytes inserted at offset %d)", bf.path, insert, mid))
	p.ChangedRegions = len(changed) + 1

	old := v1[renamed].path
	v2[renamed].path = "share/assets-v2/" + filepath.Base(old)
	p.Changes = append(p.Changes, fmt.Sprintf("renamed: %s -> %s", old, v2[renamed].path))
	for _, i := range removed {
		v2[i].path = ""
		p.Changes = append(p.Changes, "removed: "+v1[i].path)
	}
	for k := range 10 {
		sz := sizes[order[k]] // a size like the others, content all new
		f := file{path: fmt.Sprintf("%s/new%02d.bin", dirs[k%len(dirs)], k), segs: []segment{{next(), 0, sz}}}
		v2 = append(v2, f)
		p.ChangedBytes += sz
		p.ChangedFileBytes += sz
		p.ChangedRegions++
		p.Changes = append(p.Changes, fmt.Sprintf("added: %s (%d bytes)", f.path, sz))
	}
	v2 = slices.DeleteFunc(v2, func(f file) bool { return f.path == "" })
	p.V2Files = len(v2)
	// Where each v2 file's bytes lie in v1: streams are unique to one v1
	// file, and a v1 file is its stream from offset 0.
	inV1 := map[uint64]string{}
	for _, f := range v1 {
		inV1[f.segs[0].stream] = f.path
	}
	p.origin, p.sizes = map[string][]delta.Range{}, map[string]int64{}
	for _, f := range v2 {
		var at int64
		for _, sg := range f.segs {
			if bp, ok := inV1[sg.stream]; ok {
				p.origin[f.path] = append(p.origin[f.path], delta.Range{Off: at, Len: sg.n, BasePath: bp, BaseOff: sg.off})
			}
			at += sg.n
		}
		p.sizes[f.path] = at
		p.V2Size += at
	}
	return v1, v2, p
}

// writeFile writes the segments to path, creating its directory.
func writeFile(path string, seed uint64, segs []segment, mt time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	buf := make([]byte, blockSize)
	for _, s := range segs {
		for off := s.off; off < s.off+s.n; {
			k := off / blockSize
			fillBlock(buf, seed, s.stream, uint64(k))
			lo := off - k*blockSize
			hi := min(int64(blockSize), s.off+s.n-k*blockSize)
			if _, err := w.Write(buf[lo:hi]); err != nil {
				fh.Close()
				return err
			}
			off = k*blockSize + hi
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	return os.Chtimes(path, mt, mt)
}

// fillBlock fills buf with block k of stream s.
func fillBlock(buf []byte, seed, s, k uint64) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], s)
	binary.LittleEndian.PutUint64(key[16:], k)
	key[24] = 0x5d // keeps the key away from all-zero seeds
	c := rand.NewChaCha8(key)
	c.Read(buf)
}

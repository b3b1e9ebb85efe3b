package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// checkBoltLayout checks the page structure of a bbolt file from its raw
// bytes before bbolt is let near it: bbolt follows page ids as it finds
// them, so garbage can send a cursor round a cycle of pages for ever (seen
// with a truncated piece-completion file) or outside the file (a fault).
// This walk refuses any page id outside the file or the meta's high-water
// mark, any page of the wrong type, and any page reached twice. The state
// files are small (kilobytes to a few megabytes), so reading them whole
// is cheap. It reads little-endian, as bbolt writes on amd64 and arm64.
func checkBoltLayout(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		return nil // missing or empty: bbolt creates a fresh database
	}
	const maxCheck = 256 << 20
	if st.Size() > maxCheck {
		return nil // far larger than the agent writes; leave it to bbolt
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // an I/O error is bbolt's to report
	}
	return boltLayout(b)
}

const (
	pageHeader   = 16
	elemSize     = 16
	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01
	boltMagic    = 0xED0CDAED
	noFreelist   = ^uint64(0)
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

func readMeta(b []byte, off int) (boltMeta, bool) {
	if off+pageHeader+64 > len(b) {
		return boltMeta{}, false
	}
	m := b[off+pageHeader : off+pageHeader+64]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:56])
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != 2 || h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

func boltLayout(b []byte) error {
	m0, ok0 := readMeta(b, 0)
	var m1 boltMeta
	ok1 := false
	if ok0 {
		m1, ok1 = readMeta(b, int(m0.pageSize))
	} else {
		// bbolt then guesses the OS page size for the second meta.
		m1, ok1 = readMeta(b, os.Getpagesize())
	}
	m := m0
	switch {
	case !ok0 && !ok1:
		return errors.New("no valid meta page")
	case !ok0 || (ok1 && m1.txid > m0.txid):
		m = m1
	}
	ps := uint64(m.pageSize)
	if ps < 512 || ps > 1<<20 {
		return fmt.Errorf("page size %d", ps)
	}
	size := uint64(len(b))
	seen := map[uint64]bool{}
	// page returns the bytes of page id with its overflow pages.
	page := func(id uint64, flags uint16) ([]byte, error) {
		if id < 2 || id >= m.hwm || seen[id] {
			return nil, fmt.Errorf("page %d out of place (high-water mark %d, or reached twice)", id, m.hwm)
		}
		seen[id] = true
		off := id * ps
		if off+pageHeader > size {
			return nil, fmt.Errorf("page %d lies beyond the end of the file (%d bytes)", id, size)
		}
		h := b[off:]
		if f := binary.LittleEndian.Uint16(h[8:]); f&flags == 0 {
			return nil, fmt.Errorf("page %d has type %#x, want %#x", id, f, flags)
		}
		n := (1 + uint64(binary.LittleEndian.Uint32(h[12:]))) * ps
		if id+n/ps > m.hwm || off+n > size {
			return nil, fmt.Errorf("page %d (%d bytes) runs past the end of the file", id, n)
		}
		return b[off : off+n], nil
	}
	if m.freelist != noFreelist {
		p, err := page(m.freelist, freelistPage)
		if err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
		count := uint64(binary.LittleEndian.Uint16(p[10:]))
		start := uint64(pageHeader)
		if count == 0xFFFF {
			if len(p) < pageHeader+8 {
				return errors.New("freelist: short page")
			}
			count, start = binary.LittleEndian.Uint64(p[pageHeader:]), pageHeader+8
		}
		if count > (uint64(len(p))-start)/8 {
			return fmt.Errorf("freelist: %d ids do not fit its page", count)
		}
		for i := range count {
			if id := binary.LittleEndian.Uint64(p[start+8*i:]); id < 2 || id >= m.hwm {
				return fmt.Errorf("freelist: page id %d out of range", id)
			}
		}
	}
	var walkPage func(p []byte, depth int) error
	walkBucket := func(v []byte, depth int) error {
		if depth > 64 {
			return errors.New("buckets nested too deep")
		}
		if len(v) < 16 {
			return errors.New("short bucket header")
		}
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			p, err := page(root, branchPage|leafPage)
			if err != nil {
				return err
			}
			return walkPage(p, depth)
		}
		if len(v) < 16+pageHeader {
			return errors.New("short inline bucket")
		}
		inline := v[16:]
		if binary.LittleEndian.Uint16(inline[8:])&leafPage == 0 {
			return errors.New("inline bucket is not a leaf")
		}
		return walkPage(inline, depth)
	}
	walkPage = func(p []byte, depth int) error {
		le := binary.LittleEndian
		flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
		if pageHeader+count*elemSize > len(p) {
			return fmt.Errorf("page %d: %d elements do not fit", le.Uint64(p), count)
		}
		for i := range count {
			e := pageHeader + i*elemSize
			if flags&branchPage != 0 {
				pos, ks := int(le.Uint32(p[e:])), int(le.Uint32(p[e+4:]))
				if e+pos+ks > len(p) || e+pos+ks < e {
					return fmt.Errorf("page %d: key outside the page", le.Uint64(p))
				}
				child, err := page(le.Uint64(p[e+8:]), branchPage|leafPage)
				if err != nil {
					return err
				}
				if err := walkPage(child, depth); err != nil {
					return err
				}
				continue
			}
			ef, pos, ks, vs := le.Uint32(p[e:]), int(le.Uint32(p[e+4:])), int(le.Uint32(p[e+8:])), int(le.Uint32(p[e+12:]))
			end := e + pos + ks + vs
			if end > len(p) || end < e {
				return fmt.Errorf("page %d: key or value outside the page", le.Uint64(p))
			}
			if ef&bucketLeaf != 0 {
				if err := walkBucket(p[e+pos+ks:end], depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root := make([]byte, 16)
	binary.LittleEndian.PutUint64(root, m.root)
	return walkBucket(root, 0)
}

package agent

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/release"
)

// releaseCache is the agent's cache directory, the one place that knows
// its layout:
//
//	releases/<name>/<version>/…                 payload, as the torrent writes it
//	current/<name> -> ../releases/<name>/<version>   the active version
//	state/releases/<name>/<version>.json        verified manifest, for restarts
//	state/releases/<name>/<version>.torrent     its torrent
//
// Records live in the state database; the agent's activation, GC and
// adoption of orphans decide, and this type does the file work.
type releaseCache struct {
	dir string
}

// releasesDir holds every release's payload; the torrent client's data
// directory and the filesystem whose free space counts.
func (c releaseCache) releasesDir() string { return filepath.Join(c.dir, "releases") }

// storageDir is where the torrent storage of a release named name writes
// (the torrent's own name, the version, is the next path element).
func (c releaseCache) storageDir(name string) string { return filepath.Join(c.releasesDir(), name) }

func (c releaseCache) releaseDir(name, version string) string {
	return filepath.Join(c.releasesDir(), name, version)
}

func (c releaseCache) currentLink(name string) string { return filepath.Join(c.dir, "current", name) }

func (c releaseCache) manifestPath(name, version string) string {
	return filepath.Join(c.dir, "state", "releases", name, version+".json")
}

func (c releaseCache) torrentPath(name, version string) string {
	return filepath.Join(c.dir, "state", "releases", name, version+".torrent")
}

// activeVersion reads which version current/<name> points at ("" if none).
func (c releaseCache) activeVersion(name string) string {
	target, err := os.Readlink(c.currentLink(name))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// switchCurrent points current/<name> at version with one rename of a
// symlink, so readers see the old or the new release and never a mix.
func (c releaseCache) switchCurrent(name, version string) error {
	link := c.currentLink(name)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := link + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.Symlink(filepath.Join("..", "releases", name, version), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(link))
	return nil
}

// keepMetadata stores a release's verified manifest and torrent so a
// restart can resume and seed without the catalog.
func (c releaseCache) keepMetadata(m *catalog.Manifest, torrentBytes []byte) error {
	if err := writeFileAtomic(c.manifestPath(m.Name, m.Version), mustMarshalManifest(m)); err != nil {
		return err
	}
	return writeFileAtomic(c.torrentPath(m.Name, m.Version), torrentBytes)
}

// manifest reads the verified manifest kept next to the state.
func (c releaseCache) manifest(name, version string) (*catalog.Manifest, error) {
	b, err := os.ReadFile(c.manifestPath(name, version))
	if err != nil {
		return nil, err
	}
	return catalog.ParseManifest(b)
}

// metadata reads the kept manifest and torrent and checks that they belong
// together and to name@version.
func (c releaseCache) metadata(name, version string) (*catalog.Manifest, metainfo.Hash, error) {
	m, err := c.manifest(name, version)
	if err != nil {
		return nil, metainfo.Hash{}, fmt.Errorf("cached manifest: %w", err)
	}
	if m.Name != name || m.Version != version {
		return nil, metainfo.Hash{}, fmt.Errorf("cached manifest %s names %s", c.manifestPath(name, version), m.Ref())
	}
	tb, err := os.ReadFile(c.torrentPath(name, version))
	if err != nil {
		return m, metainfo.Hash{}, fmt.Errorf("cached torrent: %w", err)
	}
	tf, err := torrentfile.Parse(tb, m)
	if err != nil {
		return m, metainfo.Hash{}, fmt.Errorf("cached torrent %s: %w", c.torrentPath(name, version), err)
	}
	return m, tf.InfoHash, nil
}

// remove deletes a release's payload and its kept metadata. Only a failure
// to remove the payload is an error: metadata without payload is ignored
// and overwritten by the next download.
func (c releaseCache) remove(name, version string) error {
	if err := os.RemoveAll(c.releaseDir(name, version)); err != nil {
		return err
	}
	os.Remove(c.manifestPath(name, version))
	os.Remove(c.torrentPath(name, version))
	os.Remove(c.codesPath(name, version))
	return nil
}

// unrecorded lists release directories whose name@version known does not
// hold: orphans of a lost state database or of an interrupted eviction.
func (c releaseCache) unrecorded(known map[string]bool) []release.Ref {
	var out []release.Ref
	names, _ := os.ReadDir(c.releasesDir())
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		versions, _ := os.ReadDir(filepath.Join(c.releasesDir(), n.Name()))
		for _, v := range versions {
			ref := release.Ref{Name: n.Name(), Version: v.Name()}
			if v.IsDir() && !known[ref.String()] {
				out = append(out, ref)
			}
		}
	}
	return out
}

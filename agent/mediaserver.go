package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/mediaserve"
	"github.com/swarmship/swarmship/internal/release"
)

// mediaState is the agent's HTTP server for the site's players
// (media.listen, internal/mediaserve). The server exists from New on, so
// that handlers can be mounted and tests can call it; it listens from Run.
type mediaState struct {
	srv   *mediaserve.Server
	mu    sync.Mutex // guards ln and done (set by Run, read by others)
	ln    net.Listener
	done  chan struct{}
	index sync.Map // *download -> map[string]mediaFile
	// urgent are pieces being fetched from the origin for a waiting
	// player, so that two requests do not fetch one piece twice.
	urgentMu sync.Mutex
	urgent   map[urgentPiece]bool
}

type urgentPiece struct {
	d *download
	p int
}

// urgentGrace is how long a player's request waits for peers before the
// pieces no connected peer has are fetched from the origin at once: the
// offloader fetches its shard in piece order, which may be minutes away
// from the segment a player wants now.
const urgentGrace = 3 * time.Second

// mediaFile is a file of a held release with the pieces that cover it.
type mediaFile struct {
	mediaserve.File
	begin, end int // piece indices, end exclusive
}

func (a *Agent) newMediaServer() error {
	srv, err := mediaserve.New(a.cfg.Media, mediaSource{a}, a.log.With("component", "media"))
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	a.media.srv = srv
	return nil
}

// MediaHandler serves what media.listen serves (tests, embedding).
func (a *Agent) MediaHandler() http.Handler { return a.media.srv }

// MountMedia adds a handler to the media server, behind its client checks
// and limits (per-screen playlists mount "GET /screens/" here). Call it
// before Run.
func (a *Agent) MountMedia(pattern string, h http.Handler) { a.media.srv.Handle(pattern, h) }

// MediaAddr is where the media server listens, once Run has started it.
func (a *Agent) MediaAddr() string {
	a.media.mu.Lock()
	defer a.media.mu.Unlock()
	if a.media.ln == nil {
		return ""
	}
	return a.media.ln.Addr().String()
}

// MediaStats are the media server's counters.
func (a *Agent) MediaStats() *mediaserve.Stats { return a.media.srv.Stats() }

// startMedia listens on media.listen (Run; sync serves no players).
func (a *Agent) startMedia() error {
	a.media.mu.Lock()
	defer a.media.mu.Unlock()
	if !a.cfg.Media.Enabled() || a.media.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.Media.Listen)
	if err != nil {
		return fmt.Errorf("media.listen: %w", err)
	}
	done := make(chan struct{})
	a.media.ln, a.media.done = ln, done
	go func() {
		defer close(done)
		if err := a.media.srv.Serve(ln); err != nil {
			a.log.Error("media server stopped", "err", err)
		}
	}()
	a.log.Info("media server listening", "addr", ln.Addr().String())
	return nil
}

// stopMedia closes the media server and its connections.
func (a *Agent) stopMedia() {
	if a.media.srv != nil {
		a.media.srv.Close()
	}
	a.media.mu.Lock()
	done := a.media.done
	a.media.mu.Unlock()
	if done != nil {
		<-done
	}
}

// mediaSource is the agent as the media server sees it.
type mediaSource struct{ a *Agent }

// mediaName reports whether name may be served at all: listed in
// media.releases, or (none listed) subscribed.
func (a *Agent) mediaName(name string) bool {
	if len(a.cfg.Media.Releases) > 0 {
		return slices.Contains(a.cfg.Media.Releases, name)
	}
	for _, s := range a.cfg.Subscriptions {
		if s.Name == name && s.Name != a.cfg.SelfUpdate.Release {
			return true
		}
	}
	return false
}

// mediaServes reports whether d is served: listed by name, or carrying a
// playlist when the agent decides by itself.
func (a *Agent) mediaServes(d *download) bool {
	if !a.mediaName(d.ref.Name) {
		return false
	}
	if len(a.cfg.Media.Releases) > 0 {
		return true
	}
	for _, f := range d.manifest.Files {
		switch strings.ToLower(path.Ext(f.Path)) {
		case ".m3u8", ".mpd":
			return true
		}
	}
	return false
}

func (a *Agent) heldDownload(name, version string) *download {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.downloads[release.Format(name, version)]
}

// Current is the active version; before any is active, the version the
// subscription is fetching, so that players can start on its verified
// segments.
func (s mediaSource) Current(name string) (string, error) {
	a := s.a
	if !a.mediaName(name) {
		return "", mediaserve.ErrNotFound
	}
	if v := a.cache.activeVersion(name); v != "" {
		if d := a.heldDownload(name, v); d != nil && a.mediaServes(d) {
			return v, nil
		}
	}
	a.mu.Lock()
	var target string
	for _, st := range a.subs {
		if st.Name == name {
			target = st.Target
		}
	}
	a.mu.Unlock()
	if d := a.heldDownload(name, target); target != "" && d != nil && a.mediaServes(d) {
		return target, nil
	}
	return "", mediaserve.ErrNotFound
}

// Release is a version the agent holds: active, kept for rollback,
// verified and waiting for its activation time, or still downloading.
func (s mediaSource) Release(name, version string) (mediaserve.Release, error) {
	a := s.a
	d := a.heldDownload(name, version)
	if d == nil || d.ctx.Err() != nil || !a.mediaServes(d) {
		return nil, mediaserve.ErrNotFound
	}
	return &mediaRelease{a: a, d: d, files: a.mediaIndex(d)}, nil
}

// mediaIndex maps d's manifest paths to their files and pieces, built once
// per download.
func (a *Agent) mediaIndex(d *download) map[string]mediaFile {
	if v, ok := a.media.index.Load(d); ok {
		return v.(map[string]mediaFile)
	}
	files := make(map[string]mediaFile, len(d.manifest.Files))
	for _, f := range d.manifest.Files {
		files[f.Path] = mediaFile{File: mediaserve.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256}, begin: -1}
	}
	// The torrent's files may hold more than the manifest (BEP 47 pad
	// files): match by path.
	for _, tf := range d.t.Files() {
		fi := tf.FileInfo()
		p := strings.Join(fi.BestPath(), "/")
		if mf, ok := files[p]; ok {
			mf.begin, mf.end = tf.BeginPieceIndex(), tf.EndPieceIndex()
			if tf.Length() == 0 {
				mf.begin, mf.end = 0, 0
			}
			files[p] = mf
		}
	}
	// Forget the indexes of dropped downloads.
	a.media.index.Range(func(k, _ any) bool {
		if k.(*download).ctx.Err() != nil {
			a.media.index.Delete(k)
		}
		return true
	})
	a.media.index.Store(d, files)
	return files
}

type mediaRelease struct {
	a     *Agent
	d     *download
	files map[string]mediaFile
}

func (r *mediaRelease) File(p string) (mediaserve.File, bool) {
	f, ok := r.files[p]
	return f.File, ok && f.begin >= 0
}

// Open waits, while the release downloads, for the file's pieces to pass
// their SHA-1 check (their priority raised to the highest), then opens it
// inside the release directory without following a symlink. The media
// server checks the bytes against the signed SHA-256 before it sends any.
func (r *mediaRelease) Open(ctx context.Context, p string) (*os.File, error) {
	f, ok := r.files[p]
	if !ok || f.begin < 0 {
		return nil, mediaserve.ErrNotFound
	}
	rec, ok, err := r.a.state.Get(r.d.ref.String())
	if err != nil {
		return nil, err
	}
	if !ok || rec.Phase == PhaseFailed || rec.Phase == PhaseQueued {
		return nil, mediaserve.ErrNotFound
	}
	if rec.Phase == PhaseDownloading {
		if err := r.a.waitPieces(ctx, r.d, f.begin, f.end); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(r.a.cache.releaseDir(r.d.ref.Name, r.d.ref.Version))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return root.Open(p)
}

// waitPieces raises pieces [begin, end) of d to the highest priority and
// waits until all have passed their hash check, or ctx ends. Past a
// policy pause (window, battery) or a write fault the wait ends with why.
// Raised pieces keep their priority: they are wanted soon either way.
func (a *Agent) waitPieces(ctx context.Context, d *download, begin, end int) error {
	missing := func(raise bool) bool {
		left := false
		for i := begin; i < end; i++ {
			if !d.t.PieceState(i).Complete {
				left = true
				if raise {
					d.t.Piece(i).SetPriority(torrent.PiecePriorityNow)
				}
			}
		}
		return left
	}
	sub := d.t.SubscribePieceStateChanges()
	defer sub.Close()
	if !missing(true) {
		return nil
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	start, fetched := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			paused, fault := d.paused, d.fault
			d.mu.Unlock()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if fault != "" {
					return &mediaserve.NotReadyError{Reason: fault}
				}
				if paused {
					return &mediaserve.NotReadyError{Reason: "the release's download is paused by policy (window, metered link or battery)"}
				}
			}
			return ctx.Err()
		case <-d.ctx.Done():
			return mediaserve.ErrNotFound
		case ch, ok := <-sub.Values:
			if !ok {
				return mediaserve.ErrNotFound
			}
			if ch.Index < begin || ch.Index >= end || !ch.Complete {
				continue
			}
		case <-tick.C:
			if !fetched && time.Since(start) >= urgentGrace {
				fetched = true
				a.fetchUrgent(ctx, d, begin, end)
			}
		}
		if !missing(false) {
			return nil
		}
	}
}

// fetchUrgent fetches from the origin, one after another, the pieces of
// [begin, end) that are missing and that no connected peer has, unless the
// release is paused (the offloader's pause covers this path too). It
// costs the origin those pieces again only if their shard's owner fetches
// them too: a player waiting is worth that.
func (a *Agent) fetchUrgent(ctx context.Context, d *download, begin, end int) {
	if d.off == nil || d.off.paused.Load() {
		return
	}
	conns := d.t.PeerConns()
	for p := begin; p < end; p++ {
		if d.t.PieceState(p).Complete || ctx.Err() != nil {
			continue
		}
		peerHas := false
		for _, pc := range conns {
			if pc.PeerPieces().Contains(uint32(p)) {
				peerHas = true
				break
			}
		}
		if peerHas {
			continue
		}
		key := urgentPiece{d, p}
		a.media.urgentMu.Lock()
		if a.media.urgent == nil {
			a.media.urgent = map[urgentPiece]bool{}
		}
		busy := a.media.urgent[key]
		a.media.urgent[key] = true
		a.media.urgentMu.Unlock()
		if busy {
			continue
		}
		err := d.off.fetchPiece(ctx, p)
		a.media.urgentMu.Lock()
		delete(a.media.urgent, key)
		a.media.urgentMu.Unlock()
		if err != nil && ctx.Err() == nil {
			a.log.Warn("fetching a piece for a waiting player failed", "release", d.ref.Name, "version", d.ref.Version, "piece", p, "err", err)
			return
		}
	}
}

var (
	descMediaResponses = prometheus.NewDesc("swarmship_agent_media_responses_total", "Media server answers by result: served (200, 206, 304), not_ready (503), refused (client address or connection limits), verify_failed (bytes not matching the signed SHA-256).", []string{"result"}, nil)
	descMediaBytes     = prometheus.NewDesc("swarmship_agent_media_sent_bytes_total", "Body bytes the media server sent to players.", nil, nil)
	descMediaWaits     = prometheus.NewDesc("swarmship_agent_media_waits_total", "Media requests that waited for the pieces of a release still downloading.", nil, nil)
)

// mediaCollector exports the media server's counters (zeros when off).
type mediaCollector struct{ a *Agent }

func (c mediaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMediaResponses
	ch <- descMediaBytes
	ch <- descMediaWaits
}

func (c mediaCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.media.srv.Stats()
	for result, v := range map[string]int64{"served": st.Served.Load(), "not_ready": st.NotReady.Load(), "refused": st.Refused.Load(), "verify_failed": st.HashFailed.Load()} {
		ch <- prometheus.MustNewConstMetric(descMediaResponses, prometheus.CounterValue, float64(v), result)
	}
	ch <- prometheus.MustNewConstMetric(descMediaBytes, prometheus.CounterValue, float64(st.Bytes.Load()))
	ch <- prometheus.MustNewConstMetric(descMediaWaits, prometheus.CounterValue, float64(st.Waited.Load()))
}

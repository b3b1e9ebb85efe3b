// Package mediaserve is the agent's HTTP server for a site's players: it
// serves the files of releases the agent holds, read-only, at stable URLs,
// and never a byte that has not been checked against the release's signed
// SHA-256. Where the bytes come from (and waiting for a file still
// downloading) is the Source's business; this package owns URLs, headers,
// verification and the limits per client.
//
// URLs:
//
//	/media/<name>/<path>            302 to the version the agent serves now
//	/media/<name>@<version>/<path>  that version's file (immutable)
//
// A stable URL redirects instead of serving, so that a player resolves a
// playlist's relative segment URLs against one version and never mixes two
// versions' segments when the agent switches in the middle of a play.
package mediaserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/internal/release"
)

// File is one file of a release as the signed manifest lists it.
type File struct {
	Path   string // slash-separated, relative to the release root
	Size   int64
	SHA256 string // lowercase hex
}

// Source finds releases; the agent implements it.
type Source interface {
	// Current is the version that name's stable URLs serve now.
	Current(name string) (version string, err error)
	// Release is name@version, if it is held and served.
	Release(name, version string) (Release, error)
}

// Release is one held release.
type Release interface {
	// File looks a path up in the signed manifest.
	File(path string) (File, bool)
	// Open opens the file read-only once all of its pieces have passed
	// their hash check, waiting for them (priority raised) until ctx ends.
	Open(ctx context.Context, path string) (*os.File, error)
}

// ErrNotFound: no such release (or not served), or no such file.
var ErrNotFound = errors.New("not found")

// NotReadyError says why a file cannot be had now (a download paused by
// policy, say); the client is told to come back later.
type NotReadyError struct{ Reason string }

func (e *NotReadyError) Error() string { return "not ready: " + e.Reason }

// Server serves media; create it with New.
type Server struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	allow   []netip.Prefix
	origins map[string]bool
	mux     *http.ServeMux
	checked checkedFiles
	hashing chan struct{} // bounds concurrent hashes

	// Hashes run under the server's lifetime, not a request's: a request
	// that gives up (WaitTimeout, client gone) leaves the hash going for
	// the next one; Close stops them.
	ctx     context.Context
	cancel  context.CancelFunc
	hashers sync.WaitGroup

	onHashBlock func(ctx context.Context, off int64) // tests: a slow disk

	stats Stats

	mu  sync.Mutex
	srv *http.Server
}

// Stats counts what the server did.
type Stats struct {
	Requests    atomic.Int64 // answered (any status)
	Served      atomic.Int64 // files answered 200/206/304
	Bytes       atomic.Int64 // body bytes of those
	Waited      atomic.Int64 // requests that waited for pieces
	NotReady    atomic.Int64 // answered 503
	Refused     atomic.Int64 // connections or requests refused (address, limits)
	HashFailed  atomic.Int64 // files whose bytes did not match their SHA-256
	HashedBytes atomic.Int64 // bytes hashed before serving
}

// maxChecked bounds the memo of verified files.
const maxChecked = 1 << 16

// maxFlights bounds the files waiting to be hashed or being hashed (a
// goroutine and an open file each); past it a request is answered 503.
const maxFlights = 256

// New returns a server for cfg (defaults applied and validated).
func New(cfg Config, src Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	allow, err := cfg.prefixes()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctx: ctx, cancel: cancel,
		cfg: cfg, src: src, log: log, allow: allow, origins: map[string]bool{},
		mux: http.NewServeMux(), hashing: make(chan struct{}, 2),
		checked: checkedFiles{m: map[string]checked{}, flights: map[string]*flight{}},
	}
	for _, o := range cfg.AllowOrigins {
		s.origins[o] = true
	}
	s.mux.HandleFunc("GET /media/", s.serveMedia)
	return s, nil
}

// Handle mounts another handler on the server (per-screen playlists, say);
// it gets the same client checks and limits.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Allowed reports whether a client address may use the server.
func (s *Server) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("") // a zone (fe80::1%eth0) never matches a prefix
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ServeHTTP checks the client's address, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.stats.Requests.Add(1)
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.Allowed(ap.Addr()) {
		s.stats.Refused.Add(1)
		http.Error(w, "forbidden: client address not in media.allow", http.StatusForbidden)
		return
	}
	s.cors(w, r)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(&sendDeadline{ResponseWriter: w, timeout: s.cfg.SendTimeout}, r)
}

func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	if o == "" || len(s.origins) == 0 {
		return
	}
	switch {
	case s.origins["*"]:
		w.Header().Set("Access-Control-Allow-Origin", "*")
	case s.origins[o]:
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	default:
		return
	}
	// Range and conditional requests need these to be read by a page.
	w.Header().Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag, Accept-Ranges")
}

// Serve accepts connections on ln until Close, with the per-client and
// total connection limits and the address check at accept.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		return errors.New("media server already serving")
	}
	s.srv = srv
	s.mu.Unlock()
	err := srv.Serve(newLimitListener(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerClient, s.Allowed, &s.stats.Refused))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving, closes open connections and stops the hashes
// under way (waiting for them to end).
func (s *Server) Close() error {
	s.checked.mu.Lock()
	s.checked.closed = true // no hash starts after this
	s.checked.mu.Unlock()
	s.cancel()
	s.hashers.Wait()
	s.mu.Lock()
	srv := s.srv
	s.srv = &http.Server{} // a later Serve fails
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/media/")
	relPart, filePath, ok := strings.Cut(rest, "/")
	if !ok || filePath == "" {
		http.NotFound(w, r)
		return
	}
	name, version, pinned := strings.Cut(relPart, "@")
	if release.ValidateName("release", name) != nil || (pinned && release.ValidateName("version", version) != nil) {
		http.NotFound(w, r)
		return
	}
	if err := checkPath(filePath); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !pinned {
		s.redirect(w, r, name, filePath)
		return
	}
	rel, err := s.src.Release(name, version)
	if err != nil {
		s.fail(w, name+"@"+version, filePath, err)
		return
	}
	f, ok := rel.File(filePath)
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	// The signed SHA-256 names the bytes: a strong validator that holds
	// across agents and versions with the same file.
	etag := `"sha256-` + f.SHA256 + `"`
	h.Set("ETag", etag)
	h.Set("Content-Type", ContentType(f.Path))
	h.Set("Cache-Control", cacheControl(f.Path))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		// The client holds these very bytes: no need to wait for them.
		s.stats.Served.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WaitTimeout)
	defer cancel()
	file, err := s.open(ctx, name+"@"+version, rel, f)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.fail(w, name+"@"+version, filePath, err)
		return
	}
	defer file.Close()
	s.stats.Served.Add(1)
	cw := &countingWriter{ResponseWriter: w, n: &s.stats.Bytes}
	http.ServeContent(cw, r, "", time.Time{}, io.NewSectionReader(file, 0, f.Size))
}

// open waits for the file, then checks its bytes against the signed
// SHA-256 (once per file on disk: the check is remembered by the file's
// identity, size and modification time).
func (s *Server) open(ctx context.Context, id string, rel Release, f File) (*os.File, error) {
	start := time.Now()
	file, err := rel.Open(ctx, f.Path)
	if err != nil {
		return nil, err
	}
	if time.Since(start) > 50*time.Millisecond {
		s.stats.Waited.Add(1)
	}
	fi, err := file.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != f.Size) {
		err = fmt.Errorf("%s on disk is not a regular file of %d bytes", f.Path, f.Size)
	}
	if err == nil {
		err = s.checked.verify(ctx, id+"/"+f.Path, fi, f, s, func() (*os.File, error) { return rel.Open(ctx, f.Path) })
	}
	if err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, name, filePath string) {
	version, err := s.src.Current(name)
	if err != nil {
		s.fail(w, name, filePath, err)
		return
	}
	parts := strings.Split(filePath, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	loc := "/media/" + name + "@" + version + "/" + strings.Join(parts, "/")
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	// Where a stable URL points changes with the next activation.
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, loc, http.StatusFound)
}

func (s *Server) fail(w http.ResponseWriter, what, filePath string, err error) {
	// No validator or freshness for an error: a cache must not keep it.
	w.Header().Del("ETag")
	w.Header().Set("Cache-Control", "no-store")
	var nr *NotReadyError
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
	case errors.As(err, &nr):
		s.stats.NotReady.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "not ready: "+nr.Reason, http.StatusServiceUnavailable)
	case errors.Is(err, context.DeadlineExceeded):
		s.stats.NotReady.Add(1)
		w.Header().Set("Retry-After", "2")
		http.Error(w, "still downloading or being verified", http.StatusServiceUnavailable)
	case errors.Is(err, errMismatch):
		s.log.Error("media file does not match its signed SHA-256; not served", "release", what, "file", filePath)
		http.Error(w, "file failed verification", http.StatusInternalServerError)
	default:
		s.log.Warn("media request failed", "release", what, "file", filePath, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// checkPath refuses paths no manifest can hold (the manifest lookup is the
// real gate: only listed files are served).
func checkPath(p string) error {
	if len(p) > 4096 || strings.ContainsRune(p, 0) || strings.Contains(p, `\`) {
		return errors.New("bad path")
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return errors.New("bad path")
		}
	}
	return nil
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// ContentType is the media type served for a file name: players check
// it (hls.js and Safari for playlists, MSE for segments).
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".m3u8", ".m3u":
		return "application/vnd.apple.mpegurl"
	case ".mpd":
		return "application/dash+xml"
	case ".ts":
		return "video/mp2t"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4", ".m4v", ".cmfv":
		return "video/mp4"
	case ".m4a", ".cmfa":
		return "audio/mp4"
	case ".aac":
		return "audio/aac"
	case ".mp3":
		return "audio/mpeg"
	case ".webm":
		return "video/webm"
	case ".vtt":
		return "text/vtt; charset=utf-8"
	case ".json":
		return "application/json"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	case ".webp":
		return "image/webp"
	case ".svg":
		return "image/svg+xml"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// cacheControl: a versioned URL never changes, so segments are immutable;
// playlists get a short life anyway, the entry point a player re-reads
// and an intermediary should not pin past a yank or an eviction.
func cacheControl(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".m3u8", ".m3u", ".mpd":
		return "public, max-age=10"
	}
	return "public, max-age=31536000, immutable"
}

var errMismatch = errors.New("bytes do not match the signed SHA-256")

// checkedFiles remembers which files on disk matched their SHA-256, and
// hashes each file once at a time for all the requests that want it.
type checkedFiles struct {
	mu      sync.Mutex
	m       map[string]checked
	flights map[string]*flight
	closed  bool
}

type checked struct {
	fi   os.FileInfo
	size int64
	mod  time.Time
}

type flight struct {
	done chan struct{}
	err  error
}

var errClosing = &NotReadyError{Reason: "media server closing"}

// verify returns nil once a file with the identity fi has matched f's
// SHA-256, starting a hash of it (on a file of its own, from open) if none
// is under way. The request waits only until ctx ends; the hash goes on.
func (c *checkedFiles) verify(ctx context.Context, key string, fi os.FileInfo, f File, s *Server, open func() (*os.File, error)) error {
	key = f.SHA256 + "\x00" + key
	for {
		c.mu.Lock()
		if k, ok := c.m[key]; ok && os.SameFile(k.fi, fi) && k.size == fi.Size() && k.mod.Equal(fi.ModTime()) {
			c.mu.Unlock()
			return nil
		}
		fl := c.flights[key]
		if fl == nil {
			if c.closed {
				c.mu.Unlock()
				return errClosing
			}
			if len(c.flights) >= maxFlights {
				c.mu.Unlock()
				return &NotReadyError{Reason: "too many files being verified"}
			}
			fl = &flight{done: make(chan struct{})}
			c.flights[key] = fl
			s.hashers.Add(1)
			c.mu.Unlock()
			file, err := open() // the pieces are in: this does not wait
			if err != nil {
				c.mu.Lock()
				delete(c.flights, key)
				fl.err = err
				c.mu.Unlock()
				close(fl.done)
				s.hashers.Done()
				return err
			}
			go c.run(key, fl, file, f, s)
		} else {
			c.mu.Unlock()
		}
		select {
		case <-fl.done:
			if fl.err != nil {
				if s.ctx.Err() != nil {
					return errClosing
				}
				return fl.err // not remembered: the next request hashes again
			}
			// Look again: the file hashed may not be the one this
			// request opened (replaced in between).
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *checkedFiles) run(key string, fl *flight, file *os.File, f File, s *Server) {
	defer s.hashers.Done()
	defer file.Close()
	fi, err := file.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != f.Size) {
		err = fmt.Errorf("%s on disk is not a regular file of %d bytes", f.Path, f.Size)
	}
	if err == nil {
		err = s.hash(s.ctx, file, f)
	}
	if err != nil && !errors.Is(err, errMismatch) && s.ctx.Err() == nil {
		s.log.Warn("media file hash failed", "file", f.Path, "err", err)
	}
	c.mu.Lock()
	delete(c.flights, key)
	if err == nil {
		if len(c.m) >= maxChecked {
			for k := range c.m { // drop an arbitrary half
				delete(c.m, k)
				if len(c.m) < maxChecked/2 {
					break
				}
			}
		}
		c.m[key] = checked{fi: fi, size: fi.Size(), mod: fi.ModTime()}
	}
	fl.err = err
	c.mu.Unlock()
	close(fl.done)
}

func (s *Server) hash(ctx context.Context, file *os.File, f File) error {
	select {
	case s.hashing <- struct{}{}:
		defer func() { <-s.hashing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var off int64
	for off < f.Size {
		if s.onHashBlock != nil {
			s.onHashBlock(ctx, off)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := file.ReadAt(buf[:min(int64(len(buf)), f.Size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == f.Size) {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	s.stats.HashedBytes.Add(off)
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		s.stats.HashFailed.Add(1)
		return errMismatch
	}
	return nil
}

// sendDeadline extends the connection's write deadline before each write,
// so a client that stops reading is dropped after SendTimeout however
// long a large file takes to send to one that reads.
type sendDeadline struct {
	http.ResponseWriter
	timeout time.Duration
}

func (w *sendDeadline) Write(b []byte) (int, error) {
	if w.timeout > 0 {
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.ResponseWriter.Write(b)
}

func (w *sendDeadline) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

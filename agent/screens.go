package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/policy"
)

// Screens serves the signage schedule to the site's players: a stable
// playlist URL per screen (/screens/NAME/playlist.m3u8) that answers the
// playlist in force, and the files of the releases the schedule names
// under immutable versioned URLs (/screens/files/NAME/VERSION/PATH).
//
// Why a rewritten playlist and not a redirect: a player polls one URL and
// compares bodies or ETags; hls.js resolves relative URIs against the
// playlist's final URL, so the body's URIs are rewritten to absolute,
// versioned paths and stay valid for segments still buffered after a
// switch. Nothing is served from a release that is not fully verified.
//
// The answer changes exactly at the scheduled instant: every request
// past the next switch re-evaluates before answering, and a timer armed
// for the switch re-evaluates even with no player asking (for status and
// the report). A switch to content that is not verified does not happen:
// the screen keeps what it played and is reported at risk.
type Screens struct {
	src ScreenContent
	now func() time.Time
	log *slog.Logger
	// saved is called with the on-air state after each change (the agent
	// persists it, so a restart keeps playing); may be nil.
	saved func([]byte)

	mu      sync.Mutex
	doc     *policy.Playlist
	docName string
	loc     *time.Location
	docErr  string
	screens map[string]*screenState
	next    time.Time // earliest next switch over all screens; zero: none
	evalAt  time.Time // the instant of the last evaluation
	timer   *time.Timer
	closed  bool
}

// ScreenContent is what Screens needs of the agent.
type ScreenContent interface {
	// Resolve says which release a schedule's content means now (the
	// version a channel points at).
	Resolve(ref policy.ContentRef) (release.Ref, error)
	// Verified returns the directory of ref when its every file is
	// verified (phase verified or active), else an error saying why not.
	Verified(ref release.Ref) (dir string, err error)
}

// screenState is one screen's on-air state (under Screens.mu).
type screenState struct {
	air    *onAir // nil: nothing on air
	since  time.Time
	wanted policy.Slot
	next   time.Time
	// nextOK: next holds for the schedule in force until it passes
	// (NextSwitch is the costly part of an evaluation).
	nextOK bool
	risk   *ScreenRisk
}

// onAir is a playlist being served.
type onAir struct {
	Content string      `json:"content"` // as the schedule wrote it
	Ref     release.Ref `json:"-"`
	Name    string      `json:"name"`
	Version string      `json:"version"`
	Path    string      `json:"playlist"`
	body    []byte
	etag    string
}

// ScreenRisk says why a screen does not play what the schedule wants.
type ScreenRisk struct {
	Wanted string    `json:"wanted"` // content and playlist
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"` // air time that was missed
}

// ScreenStatus is one screen in status and reports.
type ScreenStatus struct {
	Screen     string      `json:"screen"`
	Playing    string      `json:"playing,omitempty"` // name@version/playlist
	Since      time.Time   `json:"since,omitzero"`
	Scheduled  string      `json:"scheduled,omitempty"` // what the schedule wants now
	NextSwitch time.Time   `json:"next_switch,omitzero"`
	AtRisk     *ScreenRisk `json:"at_risk,omitempty"`
}

// SignageStatus is the signage part of the status.
type SignageStatus struct {
	Schedule string         `json:"schedule"`
	TimeZone string         `json:"timezone"`
	Error    string         `json:"error,omitempty"`
	Screens  []ScreenStatus `json:"screens"`
}

// Limits of what Screens reads and serves.
const (
	maxM3U8Bytes = 4 << 20
	// maxScreenClock bounds a timer: a wall-clock step (NTP, a VM resume)
	// is noticed within it even with no player asking.
	maxScreenClock = time.Minute
)

// NewScreens returns an empty Screens; SetSchedule gives it a schedule.
func NewScreens(src ScreenContent, now func() time.Time, log *slog.Logger) *Screens {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Screens{src: src, now: now, log: log, screens: map[string]*screenState{}, loc: time.UTC}
}

// SetSchedule puts a validated schedule in force in loc and re-evaluates.
// Screens the new schedule does not name stop; the others keep what is
// on air until the schedule switches them.
func (s *Screens) SetSchedule(name string, doc *policy.Playlist, loc *time.Location) {
	s.mu.Lock()
	s.doc, s.docName, s.loc, s.docErr = doc, name, loc, ""
	for _, st := range s.screens {
		st.nextOK = false
	}
	names := doc.Screens()
	for n := range s.screens {
		if !slices.Contains(names, n) {
			delete(s.screens, n)
		}
	}
	for _, n := range names {
		if s.screens[n] == nil {
			s.screens[n] = &screenState{}
		}
	}
	s.mu.Unlock()
	s.Update()
}

// SetError records why the schedule could not be read or was refused;
// the schedule in force (if any) stays.
func (s *Screens) SetError(name, msg string) {
	s.mu.Lock()
	s.docName, s.docErr = name, msg
	s.mu.Unlock()
}

// Restore puts an earlier run's on-air state back before the first
// evaluation, so a restart keeps playing what was verified and on air.
func (s *Screens) Restore(b []byte) {
	var saved map[string]onAir
	if json.Unmarshal(b, &saved) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, a := range saved {
		if release.ValidateName("screen", n) != nil || len(s.screens) >= policy.MaxScreens {
			continue
		}
		a.Ref = release.Ref{Name: a.Name, Version: a.Version}
		if s.load(&a) != nil {
			continue
		}
		st := s.screens[n]
		if st == nil {
			st = &screenState{}
			s.screens[n] = st
		}
		st.air = &a
	}
}

// Close stops the timer.
func (s *Screens) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
}

// Update re-evaluates every screen now: the agent calls it after a pass
// (a release may have verified, a channel moved), the timer at switches.
func (s *Screens) Update() {
	s.mu.Lock()
	changed := s.evaluateLocked(s.now())
	var snap []byte
	if changed && s.saved != nil {
		snap = s.snapshotLocked()
	}
	s.mu.Unlock()
	if snap != nil {
		s.saved(snap)
	}
}

// AtRisk reports whether some screen misses its air time, so the agent
// retries each pass (cheap otherwise: nothing is read).
func (s *Screens) AtRisk() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.screens {
		if st.risk != nil {
			return true
		}
	}
	return false
}

// evaluateLocked brings every screen to the schedule at now and arms the
// timer for the next switch; it reports whether something went on air.
func (s *Screens) evaluateLocked(now time.Time) bool {
	if s.doc == nil || s.closed {
		return false
	}
	changed := false
	var next time.Time
	resolved := map[string]resolution{} // one catalog lookup per content per evaluation
	for name, st := range s.screens {
		want := s.doc.At(name, now, s.loc)
		// The air time of what is wanted: the switch this evaluation is
		// late for, if any (a risk dates from it).
		airTime := now.UTC()
		if !st.next.IsZero() && !now.Before(st.next) {
			airTime = st.next.UTC()
		}
		st.wanted = want
		if !st.nextOK || !st.next.IsZero() && !now.Before(st.next) || now.Before(s.evalAt) {
			st.next, _ = s.doc.NextSwitch(name, now, s.loc)
			st.nextOK = true
		}
		if !st.next.IsZero() && (next.IsZero() || st.next.Before(next)) {
			next = st.next
		}
		if want.IsZero() {
			if st.air != nil {
				changed = true
			}
			st.air, st.risk, st.since = nil, nil, now
			continue
		}
		air, err := s.prepare(want, st.air, resolved)
		if err != nil {
			if st.risk == nil || st.risk.Wanted != want.Content+" "+want.Path {
				st.risk = &ScreenRisk{Wanted: want.Content + " " + want.Path, Since: airTime}
				s.log.Warn("screen at risk: scheduled content is not ready; the previous content keeps playing",
					"screen", name, "wanted", want.Content, "playlist", want.Path, "err", err)
			}
			st.risk.Reason = err.Error()
			continue
		}
		st.risk = nil
		if st.air == nil || st.air.Ref != air.Ref || st.air.Path != air.Path || st.air.etag != air.etag {
			s.log.Info("screen switched", "screen", name, "content", air.Content, "release", air.Ref.String(), "playlist", air.Path)
			st.air, st.since, changed = air, airTime, true
		}
	}
	s.next, s.evalAt = next, now
	s.armLocked(now)
	return changed
}

// armLocked sets the timer for the next switch, at most maxScreenClock
// ahead. Timers run on the monotonic clock; the cap and the check on
// each request catch a stepped wall clock.
func (s *Screens) armLocked(now time.Time) {
	if s.closed {
		return
	}
	d := maxScreenClock
	if !s.next.IsZero() {
		d = min(d, max(0, s.next.Sub(now)))
	}
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.Update)
		return
	}
	s.timer.Reset(d)
}

type resolution struct {
	ref release.Ref
	err error
}

// prepare resolves and loads a slot; an error when it is not servable.
// What is on air already is only checked to be still verified, not read
// again.
func (s *Screens) prepare(want policy.Slot, cur *onAir, resolved map[string]resolution) (*onAir, error) {
	res, ok := resolved[want.Content]
	if !ok {
		ref, err := policy.ParseContentRef(want.Content)
		if err == nil {
			res.ref, res.err = s.src.Resolve(ref)
		} else {
			res.err = err
		}
		resolved[want.Content] = res
	}
	if res.err != nil {
		return nil, res.err
	}
	r := res.ref
	if cur != nil && cur.Ref == r && cur.Path == want.Path {
		if _, err := s.src.Verified(r); err != nil {
			return nil, err
		}
		return cur, nil
	}
	a := &onAir{Content: want.Content, Ref: r, Name: r.Name, Version: r.Version, Path: want.Path}
	if err := s.load(a); err != nil {
		return nil, err
	}
	return a, nil
}

// load reads and rewrites a's playlist from its verified release.
func (s *Screens) load(a *onAir) error {
	if release.ValidateName("name", a.Ref.Name) != nil || release.ValidateName("version", a.Ref.Version) != nil ||
		policy.ValidatePlaylistPath(a.Path) != nil {
		return errors.New("bad content reference")
	}
	dir, err := s.src.Verified(a.Ref)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Ref, err)
	}
	defer root.Close()
	f, err := root.Open(a.Path)
	if err != nil {
		return fmt.Errorf("%s has no playlist %s", a.Ref, a.Path)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxM3U8Bytes+1))
	if err != nil {
		return fmt.Errorf("%s: %w", a.Ref, err)
	}
	if len(b) > maxM3U8Bytes {
		return fmt.Errorf("%s: playlist %s is over %d bytes", a.Ref, a.Path, maxM3U8Bytes)
	}
	body, err := rewriteM3U8(b, a.Ref, a.Path)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Ref, err)
	}
	sum := sha256.Sum256(body)
	a.body, a.etag = body, `"`+hex.EncodeToString(sum[:16])+`"`
	return nil
}

// FilesPrefix is where Screens serves release files.
const FilesPrefix = "/screens/files/"

// fileURL is the served URL of path p inside release ref.
func fileURL(ref release.Ref, p string) string {
	parts := strings.Split(p, "/")
	for i, c := range parts {
		parts[i] = url.PathEscape(c)
	}
	return FilesPrefix + ref.Name + "/" + ref.Version + "/" + strings.Join(parts, "/")
}

var uriAttr = regexp.MustCompile(`URI="([^"]*)"`)

// rewriteM3U8 makes every URI of a playlist an absolute path to the
// release's served files. URIs must stay inside the release (publish
// --media checks that too): an absolute URL or an escaping path is
// refused rather than served.
func rewriteM3U8(b []byte, ref release.Ref, playlist string) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), []byte("#EXTM3U")) {
		return nil, fmt.Errorf("%s is not an M3U8 playlist", playlist)
	}
	base := path.Dir(playlist)
	var bad error
	resolve := func(u string) string {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "" || pu.Host != "" || strings.HasPrefix(pu.Path, "/") || pu.Path == "" {
			bad = fmt.Errorf("%s: URI %q is not a relative path inside the release", playlist, u)
			return u
		}
		p := path.Join(base, pu.Path)
		if p == ".." || strings.HasPrefix(p, "../") || policy.ValidatePlaylistPath(p) != nil {
			bad = fmt.Errorf("%s: URI %q leaves the release", playlist, u)
			return u
		}
		out := fileURL(ref, p)
		if pu.RawQuery != "" {
			out += "?" + pu.RawQuery
		}
		return out
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxM3U8Bytes)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "#"):
			line = uriAttr.ReplaceAllStringFunc(line, func(m string) string {
				return `URI="` + resolve(m[5:len(m)-1]) + `"`
			})
		case strings.TrimSpace(line) != "":
			line = resolve(strings.TrimSpace(line))
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	return out.Bytes(), nil
}

// Status lists the screens, sorted.
func (s *Screens) Status() SignageStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SignageStatus{Schedule: s.docName, TimeZone: s.loc.String(), Error: s.docErr, Screens: []ScreenStatus{}}
	for name, sc := range s.screens {
		ss := ScreenStatus{Screen: name, Since: sc.since, NextSwitch: sc.next}
		if sc.air != nil {
			ss.Playing = sc.air.Ref.String() + "/" + sc.air.Path
		}
		if !sc.wanted.IsZero() {
			ss.Scheduled = sc.wanted.Content + " " + sc.wanted.Path
		}
		if sc.risk != nil {
			r := *sc.risk
			ss.AtRisk = &r
		}
		st.Screens = append(st.Screens, ss)
	}
	slices.SortFunc(st.Screens, func(a, b ScreenStatus) int { return strings.Compare(a.Screen, b.Screen) })
	return st
}

func (s *Screens) snapshotLocked() []byte {
	m := map[string]onAir{}
	for n, st := range s.screens {
		if st.air != nil {
			m[n] = *st.air
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// ServeHTTP answers players: GET /screens/ (status JSON),
// /screens/SCREEN/playlist.m3u8 and /screens/files/NAME/VERSION/PATH.
func (s *Screens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/screens" || p == "/screens/":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(s.Status())
	case strings.HasPrefix(p, FilesPrefix):
		s.serveFile(w, r, strings.TrimPrefix(p, FilesPrefix))
	default:
		rest, ok := strings.CutPrefix(p, "/screens/")
		name, file, _ := strings.Cut(rest, "/")
		if !ok || file != "playlist.m3u8" || release.ValidateName("screen", name) != nil {
			http.NotFound(w, r)
			return
		}
		s.servePlaylist(w, r, name)
	}
}

func (s *Screens) servePlaylist(w http.ResponseWriter, r *http.Request, name string) {
	now := s.now()
	s.mu.Lock()
	// Past the next switch (the timer not yet run, or the clock stepped
	// forward), or before the last evaluation (stepped back): evaluate
	// first, so the answer is the schedule's at this instant.
	var snap []byte
	if !s.next.IsZero() && !now.Before(s.next) || now.Before(s.evalAt) {
		if s.evaluateLocked(now) && s.saved != nil {
			snap = s.snapshotLocked()
		}
	}
	var air *onAir
	if st := s.screens[name]; st != nil {
		air = st.air
	}
	s.mu.Unlock()
	if snap != nil {
		s.saved(snap)
	}
	if air == nil {
		http.Error(w, "nothing scheduled on this screen now", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	// Players poll this URL: revalidate every time (the ETag makes that a
	// 304 until the switch).
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", air.etag)
	h.Set("X-Swarmship-Content", air.Ref.String()+"/"+air.Path)
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == air.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(air.body)
}

// serveFile serves PATH of release NAME@VERSION when the release is one
// the schedule names and is verified now.
func (s *Screens) serveFile(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || release.ValidateName("name", parts[0]) != nil || release.ValidateName("version", parts[1]) != nil ||
		policy.ValidatePlaylistPath(parts[2]) != nil {
		http.NotFound(w, r)
		return
	}
	ref := release.Ref{Name: parts[0], Version: parts[1]}
	if !s.names(ref.Name) {
		http.NotFound(w, r)
		return
	}
	dir, err := s.src.Verified(ref)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer root.Close()
	f, err := root.Open(parts[2])
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	// A versioned URL never changes: players and proxies may keep it.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if ct := mediaType(parts[2]); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, parts[2], fi.ModTime(), f)
}

// names reports whether the schedule in force names release name.
func (s *Screens) names(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doc != nil {
		for _, e := range s.doc.Entries {
			if c, err := policy.ParseContentRef(e.Content); err == nil && c.Name == name {
				return true
			}
		}
	}
	for _, st := range s.screens {
		if st.air != nil && st.air.Ref.Name == name {
			return true
		}
	}
	return false
}

// mediaType is the MIME type players expect for HLS and DASH files.
func mediaType(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".m4s", ".mp4":
		return "video/mp4"
	case ".mpd":
		return "application/dash+xml"
	case ".aac":
		return "audio/aac"
	case ".vtt":
		return "text/vtt"
	}
	return ""
}

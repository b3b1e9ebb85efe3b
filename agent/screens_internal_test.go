package agent

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/policy"
)

// fakeContent is a ScreenContent over directories: a release is verified
// when it is in ok.
type fakeContent struct {
	mu       sync.Mutex
	root     string
	ok       map[string]bool
	channels map[string]string // name:channel -> version
}

func (f *fakeContent) Resolve(c policy.ContentRef) (release.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Channel == "" {
		return release.Ref{Name: c.Name, Version: c.Version}, nil
	}
	v, ok := f.channels[c.Name+":"+c.Channel]
	if !ok {
		return release.Ref{}, errors.New("no such channel")
	}
	return release.Ref{Name: c.Name, Version: v}, nil
}

func (f *fakeContent) Verified(r release.Ref) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ok[r.String()] {
		return "", errors.New(r.String() + " is downloading")
	}
	return filepath.Join(f.root, r.Name, r.Version), nil
}

func (f *fakeContent) set(key string, ok bool) { f.mu.Lock(); f.ok[key] = ok; f.mu.Unlock() }

// writeHLS writes a small HLS release (master, media playlist, segments).
func writeHLS(t *testing.T, root, name, version string) {
	t.Helper()
	dir := filepath.Join(root, name, version, "hls")
	if err := os.MkdirAll(filepath.Join(dir, "v0"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"index.m3u8":     "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"v0/audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\"\nv0/stream.m3u8\n",
		"v0/stream.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg000.ts\n#EXTINF:2.0,\nseg001.ts\n#EXT-X-ENDLIST\n",
		"v0/audio.m3u8":  "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\na0.aac\n#EXT-X-ENDLIST\n",
		"v0/seg000.ts":   name + version + " segment 0",
		"v0/seg001.ts":   name + version + " segment 1",
	}
	for p, body := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestScreens(t *testing.T, clock *fakeClock, doc string) (*Screens, *fakeContent) {
	t.Helper()
	src := &fakeContent{root: t.TempDir(), ok: map[string]bool{}, channels: map[string]string{}}
	s := NewScreens(src, clock.Now, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	p, err := policy.ParsePlaylist([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s.SetSchedule("lobby", p, time.UTC)
	return s, src
}

func get(t *testing.T, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const switchDoc = `{"entries":[
 {"screens":["lobby"],"content":"promo@2","playlist":"hls/index.m3u8","when":"daily 12:00-13:00"},
 {"screens":["lobby"],"content":"loop:signage","playlist":"hls/index.m3u8","when":"daily 00:00-24:00"}]}`

// TestScreensSwitchAtInstant: the playlist URL answers the old content up
// to the scheduled instant and the new content from it, with no timer or
// pass in between (the request itself evaluates past the switch).
func TestScreensSwitchAtInstant(t *testing.T) {
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: noon.Add(-time.Minute)}
	s, src := newTestScreens(t, clock, "{}")
	writeHLS(t, src.root, "loop", "1")
	writeHLS(t, src.root, "promo", "2")
	src.channels["loop:signage"] = "1"
	src.set("loop@1", true)
	src.set("promo@2", true)
	p, _ := policy.ParsePlaylist([]byte(switchDoc))
	s.SetSchedule("lobby", p, time.UTC)

	before := get(t, s, "/screens/lobby/playlist.m3u8")
	if before.Code != 200 || before.Header().Get("X-Swarmship-Content") != "loop@1/hls/index.m3u8" {
		t.Fatalf("before: %d %v", before.Code, before.Header())
	}
	body := before.Body.String()
	for _, want := range []string{"\n/screens/files/loop/1/hls/v0/stream.m3u8\n", `URI="/screens/files/loop/1/hls/v0/audio.m3u8"`} {
		if !strings.Contains(body, want) {
			t.Errorf("rewritten playlist lacks %q:\n%s", want, body)
		}
	}
	if ct := before.Header().Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
		t.Errorf("content type %q", ct)
	}
	etag := before.Header().Get("ETag")
	if w := get(t, s, "/screens/lobby/playlist.m3u8", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("poll with the same ETag: %d", w.Code)
	}
	clock.Set(noon.Add(-time.Nanosecond))
	if got := get(t, s, "/screens/lobby/playlist.m3u8").Header().Get("X-Swarmship-Content"); got != "loop@1/hls/index.m3u8" {
		t.Fatalf("1ns before the switch: %s", got)
	}
	clock.Set(noon)
	w := get(t, s, "/screens/lobby/playlist.m3u8", "If-None-Match", etag)
	if w.Code != 200 || w.Header().Get("X-Swarmship-Content") != "promo@2/hls/index.m3u8" {
		t.Fatalf("at the switch: %d %s", w.Code, w.Header().Get("X-Swarmship-Content"))
	}
	// The media playlist and a segment are served from the versioned URL.
	if m := get(t, s, "/screens/files/promo/2/hls/v0/stream.m3u8"); m.Code != 200 || !strings.Contains(m.Body.String(), "seg000.ts") {
		t.Errorf("media playlist: %d", m.Code)
	}
	seg := get(t, s, "/screens/files/promo/2/hls/v0/seg001.ts", "Range", "bytes=0-4")
	if seg.Code != http.StatusPartialContent || seg.Body.String() != "promo" || seg.Header().Get("Content-Type") != "video/mp2t" ||
		!strings.Contains(seg.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("segment: %d %q %v", seg.Code, seg.Body.String(), seg.Header())
	}
	// The wall clock steps back an hour (NTP): the answer follows it.
	clock.Set(noon.Add(-time.Hour))
	if got := get(t, s, "/screens/lobby/playlist.m3u8").Header().Get("X-Swarmship-Content"); got != "loop@1/hls/index.m3u8" {
		t.Fatalf("after the clock stepped back: %s", got)
	}
	clock.Set(noon)
	get(t, s, "/screens/lobby/playlist.m3u8")
	st := s.Status()
	if len(st.Screens) != 1 || st.Screens[0].Playing != "promo@2/hls/index.m3u8" || !st.Screens[0].Since.Equal(noon) ||
		!st.Screens[0].NextSwitch.Equal(noon.Add(time.Hour)) {
		t.Errorf("status: %+v", st.Screens)
	}
}

// TestScreensNotVerifiedKeepsPlaying: content not verified at air time is
// not switched to; the screen keeps the previous content and is at risk
// until the content verifies.
func TestScreensNotVerifiedKeepsPlaying(t *testing.T) {
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: noon.Add(-time.Minute)}
	s, src := newTestScreens(t, clock, "{}")
	writeHLS(t, src.root, "loop", "1")
	writeHLS(t, src.root, "promo", "2") // on disk, but not verified
	src.channels["loop:signage"] = "1"
	src.set("loop@1", true)
	p, _ := policy.ParsePlaylist([]byte(switchDoc))
	s.SetSchedule("lobby", p, time.UTC)
	clock.Set(noon.Add(time.Second))
	w := get(t, s, "/screens/lobby/playlist.m3u8")
	if w.Header().Get("X-Swarmship-Content") != "loop@1/hls/index.m3u8" {
		t.Fatalf("switched to unverified content: %s", w.Header().Get("X-Swarmship-Content"))
	}
	if !s.AtRisk() {
		t.Fatal("not at risk")
	}
	st := s.Status().Screens[0]
	if st.AtRisk == nil || st.AtRisk.Wanted != "promo@2 hls/index.m3u8" || !strings.Contains(st.AtRisk.Reason, "downloading") || !st.AtRisk.Since.Equal(noon) {
		t.Fatalf("risk: %+v", st.AtRisk)
	}
	// Files of an unverified release are not served either.
	if f := get(t, s, "/screens/files/promo/2/hls/v0/seg000.ts"); f.Code != http.StatusNotFound {
		t.Errorf("unverified segment served: %d", f.Code)
	}
	src.set("promo@2", true)
	s.Update()
	if got := get(t, s, "/screens/lobby/playlist.m3u8").Header().Get("X-Swarmship-Content"); got != "promo@2/hls/index.m3u8" || s.AtRisk() {
		t.Fatalf("after verification: %s, at risk %v", got, s.AtRisk())
	}
	// The JSON status for people and players.
	var js SignageStatus
	if err := json.Unmarshal(get(t, s, "/screens/").Body.Bytes(), &js); err != nil || js.Screens[0].Playing != "promo@2/hls/index.m3u8" {
		t.Errorf("status JSON: %v %+v", err, js)
	}
}

// TestScreensTimerSwitchesWithoutRequests: the timer armed for the next
// switch evaluates at the instant even when no player asks. The clock is
// the real one shifted so that the next minute starts 2 s from now.
func TestScreensTimerSwitchesWithoutRequests(t *testing.T) {
	realStart := time.Now()
	at := realStart.UTC().Truncate(time.Minute).Add(10 * time.Minute)
	offset := at.Add(-2 * time.Second).Sub(realStart)
	now := func() time.Time { return time.Now().Add(offset) }
	src := &fakeContent{root: t.TempDir(), ok: map[string]bool{"a@1": true, "b@1": true}}
	writeHLS(t, src.root, "a", "1")
	writeHLS(t, src.root, "b", "1")
	s := NewScreens(src, now, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	doc := `{"entries":[{"screens":["x"],"content":"b@1","playlist":"hls/index.m3u8","date":"` + at.Format(time.DateOnly) +
		`","when":"` + at.Format("15:04") + `-` + at.Add(time.Minute).Format("15:04") + `"},
		{"screens":["x"],"content":"a@1","playlist":"hls/index.m3u8","when":"00:00-24:00"}]}`
	p, err := policy.ParsePlaylist([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s.SetSchedule("t", p, time.UTC)
	if got := s.Status().Screens[0].Playing; got != "a@1/hls/index.m3u8" && now().Before(at) {
		t.Fatalf("before: %s", got)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if st := s.Status().Screens[0]; st.Playing == "b@1/hls/index.m3u8" {
			if !st.Since.Equal(at) {
				t.Fatalf("on air since %s, want the scheduled %s", st.Since, at)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the timer never switched")
}

func TestRewriteM3U8Refuses(t *testing.T) {
	ref := release.Ref{Name: "p", Version: "1"}
	for name, body := range map[string]string{
		"absolute URL":  "#EXTM3U\nhttp://evil.example/x.ts\n",
		"absolute path": "#EXTM3U\n/etc/passwd\n",
		"escape":        "#EXTM3U\n../../x.ts\n",
		"escape in tag": "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"../k\"\nx.ts\n",
		"not m3u8":      "hello\n",
	} {
		if _, err := rewriteM3U8([]byte(body), ref, "index.m3u8"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	out, err := rewriteM3U8([]byte("#EXTM3U\r\n#EXTINF:2,\r\nsub dir/seg 1.ts?x=1\r\n"), ref, "hls/index.m3u8")
	if err != nil || !strings.Contains(string(out), "\n/screens/files/p/1/hls/sub%20dir/seg%201.ts?x=1\n") {
		t.Errorf("rewrite: %v\n%s", err, out)
	}
}

// TestScreensRestoreKeepsPlaying: after a restart, what was on air comes
// back before the first evaluation, so content that is not verified at
// air time still does not replace it.
func TestScreensRestoreKeepsPlaying(t *testing.T) {
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: noon.Add(-time.Minute)}
	s, src := newTestScreens(t, clock, "{}")
	writeHLS(t, src.root, "loop", "1")
	src.channels["loop:signage"] = "1"
	src.set("loop@1", true)
	var saved []byte
	s.saved = func(b []byte) { saved = b }
	p, _ := policy.ParsePlaylist([]byte(switchDoc))
	s.SetSchedule("lobby", p, time.UTC)
	if saved == nil {
		t.Fatal("on-air state not saved")
	}
	s.Close()

	clock.Set(noon.Add(time.Minute)) // promo@2 is due, and not verified
	s2 := NewScreens(src, clock.Now, slog.New(slog.DiscardHandler))
	t.Cleanup(s2.Close)
	s2.Restore(saved)
	s2.SetSchedule("lobby", p, time.UTC)
	if got := get(t, s2, "/screens/lobby/playlist.m3u8").Header().Get("X-Swarmship-Content"); got != "loop@1/hls/index.m3u8" || !s2.AtRisk() {
		t.Fatalf("after restart: %q, at risk %v", got, s2.AtRisk())
	}
	// A saved state naming a release that is no longer verified is dropped.
	src.set("loop@1", false)
	s3 := NewScreens(src, clock.Now, slog.New(slog.DiscardHandler))
	t.Cleanup(s3.Close)
	s3.Restore(saved)
	s3.SetSchedule("lobby", p, time.UTC)
	if w := get(t, s3, "/screens/lobby/playlist.m3u8"); w.Code != http.StatusNotFound {
		t.Fatalf("unverified restored content served: %d", w.Code)
	}
}

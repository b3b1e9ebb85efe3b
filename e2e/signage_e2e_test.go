package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// writeHLSRelease writes a small HLS tree (a master playlist, a media
// playlist, two segments) whose bytes name the release.
func writeHLSRelease(t *testing.T, tag string) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "hls", "v0"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string]string{
		"hls/index.m3u8":     "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nv0/stream.m3u8\n",
		"hls/v0/stream.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts\n#EXT-X-ENDLIST\n",
		"hls/v0/seg0.ts":     strings.Repeat(tag+" 0 ", 4000),
		"hls/v0/seg1.ts":     strings.Repeat(tag+" 1 ", 4000),
	} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{filepath.Join(dir, "hls")}
}

// TestSignageScheduleSwitchesAtAirTime: a signed schedule switches the
// lobby screen from the loop to the promo at a set minute, in the site's
// time zone; the players' playlist URL answers the loop before that
// instant and the promo from it. The window screen is scheduled to switch
// to a release the agent cannot verify (its payload is gone from the
// catalog): it keeps the loop and is reported at risk in the agent's
// status, in the origin's rollout view and on its dashboard.
//
// The agent's clock is the real one shifted so that the switch minute is
// a few seconds ahead once everything is downloaded; assertions are on
// ordering (no answer before the instant is the promo, the promo comes),
// not on elapsed time.
func TestSignageScheduleSwitchesAtAirTime(t *testing.T) {
	ctx := context.Background()
	sw, err := localswarm.New(ctx, t.TempDir(), localswarm.OriginOptions{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	for _, r := range []struct{ name, version, channel string }{{"loop", "1", "signage"}, {"promo", "2", ""}, {"late", "1", ""}} {
		var ch []string
		if r.channel != "" {
			ch = append(ch, r.channel)
		}
		if _, err := sw.Publish(ctx, r.name, r.version, writeHLSRelease(t, r.name+r.version), ch...); err != nil {
			t.Fatal(err)
		}
	}
	// late@1 can never verify: its payload leaves the catalog.
	ds, ok := sw.Store.(*catalog.DirStore)
	if !ok {
		t.Skipf("store is %T, not a directory", sw.Store)
	}
	if err := os.RemoveAll(filepath.Join(ds.Root(), "data", "late")); err != nil {
		t.Fatal(err)
	}

	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	cfg := sw.AgentConfig("player-host", "store-7", "eu",
		agent.Subscription{Name: "loop", Channel: "signage"}, agent.Subscription{Name: "promo", Version: "2"}, agent.Subscription{Name: "late", Version: "1"})
	cfg.TimeZone = "Europe/Berlin"
	cfg.Signage.Schedule = "store"
	ra, err := sw.StartAgentWith(ctx, "player-host", cfg, agent.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := localswarm.WaitActive(wctx, "loop", "1", ra); err != nil {
		t.Fatal(err)
	}
	if err := localswarm.WaitActive(wctx, "promo", "2", ra); err != nil {
		t.Fatal(err)
	}

	// The switch: the agent's next full minute, 20 s ahead on its clock.
	real := time.Now()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	at := real.Truncate(time.Minute).Add(3 * time.Minute)
	offset.Store(int64(at.Add(-20 * time.Second).Sub(real)))
	local := at.In(berlin)
	day, from, to := local.Format(time.DateOnly), local.Format("15:04"), local.Add(10*time.Minute).Format("15:04")
	doc := `{"timezone":"UTC","entries":[
 {"screens":["lobby"],"content":"promo@2","playlist":"index.m3u8","date":"` + day + `","when":"` + from + `-` + to + `"},
 {"screens":["window"],"content":"late@1","playlist":"index.m3u8","date":"` + day + `","when":"` + from + `-` + to + `"},
 {"screens":["lobby","window"],"content":"loop:signage","playlist":"index.m3u8","when":"daily 00:00-24:00"}]}`
	if err := catalog.PublishPlaylist(ctx, sw.Store, sw.Keys, catalog.UpdateOptions{}, "store", []byte(doc)); err != nil {
		t.Fatal(err)
	}

	players := httptest.NewServer(ra.Agent.Screens())
	t.Cleanup(players.Close)
	poll := func(screen string) (content string, code int) {
		resp, err := http.Get(players.URL + "/screens/" + screen + "/playlist.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Swarmship-Content"), resp.StatusCode
	}
	// The agent takes the schedule at its next refresh.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, code := poll("lobby"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lobby never played: %+v", ra.Agent.Status().Signage)
		}
		time.Sleep(100 * time.Millisecond)
	}
	early := now().Before(at)
	if !early {
		t.Logf("the schedule arrived after the switch instant (loaded machine): only the after-switch checks run")
	}

	// Players poll: before the instant the loop, from it the promo.
	var sawLoop, sawPromo int
	var switched time.Time
	deadline = time.Now().Add(90 * time.Second)
	for switched.IsZero() {
		sent := now()
		c, code := poll("lobby")
		done := now()
		switch c {
		case "loop@1/index.m3u8":
			sawLoop++
			if !sent.Before(at) {
				// Asked after the instant and still the loop: only allowed
				// if the answer was computed before it, which cannot be.
				t.Fatalf("asked at %s (switch %s), got the loop", sent.Format(time.RFC3339Nano), at)
			}
		case "promo@2/index.m3u8":
			sawPromo++
			if done.Before(at) {
				t.Fatalf("the promo came before its air time: answered by %s, switch %s", done.Format(time.RFC3339Nano), at)
			}
			switched = done
		default:
			t.Fatalf("lobby answered %d %q", code, c)
		}
		if time.Now().After(deadline) {
			t.Fatal("the lobby never switched to the promo")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lobby: %d loop answers before %s, the promo %s after it", sawLoop, at.Format(time.RFC3339), switched.Sub(at))

	// The window's content is not verified: the loop stays, at risk.
	if c, _ := poll("window"); c != "loop@1/index.m3u8" {
		t.Fatalf("window plays %q, want the loop kept", c)
	}
	var risk *agent.ScreenRisk
	for _, s := range ra.Agent.Status().Signage.Screens {
		if s.Screen == "window" {
			risk = s.AtRisk
		}
	}
	if risk == nil || !strings.Contains(risk.Wanted, "late@1") || early && !risk.Since.Equal(at) || risk.Since.Before(at) {
		t.Fatalf("window at risk: %+v, want late@1 since %s", risk, at)
	}
	// The origin lists it among the screens at risk.
	deadline = time.Now().Add(30 * time.Second)
	for {
		ro := getRollout(t, sw.OriginURL)
		if ro.ScreensAtRiskTotal == 1 && ro.ScreensAtRisk[0].Screen == "window" && ro.ScreensAtRisk[0].Site == "store-7" &&
			ro.Screens == 2 && strings.Contains(ro.ScreensAtRisk[0].Playing, "loop@1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout view: %d screens, at risk %+v", ro.Screens, ro.ScreensAtRisk)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("dashboard", func(t *testing.T) {
		chromium := testenv.RequireTool(t, "chromium")
		dom := runChromium(t, chromium, "--virtual-time-budget=5000", "--dump-dom", sw.OriginURL+"/dashboard")
		if !strings.Contains(dom, `data-state="ready"`) {
			t.Fatalf("dashboard never rendered data:\n%s", truncate(dom, 3000))
		}
		row := regexp.MustCompile(`<tr\b[^>]*\bdata-screen="window"[^>]*>.*?</tr>`).FindString(dom)
		if row == "" || !strings.Contains(row, "late@1") || !strings.Contains(row, "store-7") {
			t.Fatalf("dashboard lacks the window screen at risk:\n%s", truncate(dom, 4000))
		}
		if !strings.Contains(dom, "Screens at risk (1 of 2)") {
			t.Errorf("dashboard heading missing:\n%s", truncate(dom, 4000))
		}
	})
}

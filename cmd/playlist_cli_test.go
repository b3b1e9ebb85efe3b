package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
)

func TestCatalogPlaylistSetShowRm(t *testing.T) {
	cat, keys := initCatalog(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("lobby.json", `{"timezone":"Europe/Berlin","entries":[
 {"screens":["lobby","window"],"content":"promo@1.0","playlist":"hls/index.m3u8","when":"Mon-Fri 08:00-18:00"},
 {"screens":["lobby"],"content":"xmas:signage","playlist":"index.m3u8","date":"2026-12-24","when":"09:00-11:00"}]}`)
	badZone := write("zone.json", `{"timezone":"Mars/Olympus","entries":[]}`)
	badPath := write("path.json", `{"entries":[{"screens":["a"],"content":"p@1","playlist":"../x.m3u8","when":"daily 08:00-09:00"}]}`)
	flags := []string{"--catalog", cat, "--keys", keys}
	run := func(args ...string) (string, string, int) { return swarmship(t, append(args, flags...)...) }
	if out, errOut, code := run("catalog", "playlist", "set", "lobby", good); code != 0 || !strings.Contains(out, "signage schedule lobby signed") {
		t.Fatalf("set: %d %s %s", code, out, errOut)
	}
	for _, bad := range []string{badZone, badPath} {
		if _, errOut, code := run("catalog", "playlist", "set", "bad", bad); code == 0 {
			t.Fatalf("set of %s accepted", bad)
		} else if !strings.Contains(errOut, filepath.Base(bad)) {
			t.Errorf("error does not name the file: %s", errOut)
		}
	}
	// 2026-12-24 is a Thursday: the dated entry wins on lobby, window has the weekly one.
	out, errOut, code := run("catalog", "playlist", "show", "lobby", "--at", "2026-12-24T08:30:00Z", "-o", "json")
	if code != 0 {
		t.Fatalf("show: %s", errOut)
	}
	var rows []struct {
		Screen string `json:"screen"`
		Now    struct {
			Content string `json:"content"`
		} `json:"now"`
		NextSwitch string `json:"next_switch"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if rows[0].Screen != "lobby" || rows[0].Now.Content != "xmas:signage" || rows[0].NextSwitch != "2026-12-24T11:00:00+01:00" {
		t.Errorf("lobby: %+v", rows[0])
	}
	if rows[1].Screen != "window" || rows[1].Now.Content != "promo@1.0" {
		t.Errorf("window: %+v", rows[1])
	}
	if out, _, _ := run("catalog", "playlist", "show"); strings.TrimSpace(out) != "lobby" {
		t.Errorf("list: %q", out)
	}
	if _, errOut, code := run("catalog", "playlist", "rm", "lobby"); code != 0 {
		t.Fatalf("rm: %s", errOut)
	}
	if _, _, code := run("catalog", "playlist", "rm", "lobby"); code == 0 {
		t.Fatal("rm of a missing schedule succeeded")
	}
}

func TestPrintSignage(t *testing.T) {
	var b strings.Builder
	since := time.Date(2026, 12, 24, 8, 0, 0, 0, time.UTC)
	printSignage(&b, &agent.SignageStatus{Schedule: "store", TimeZone: "Europe/Berlin", Screens: []agent.ScreenStatus{
		{Screen: "lobby", Playing: "loop@1/index.m3u8", Since: since},
		{Screen: "window", Playing: "loop@1/index.m3u8", AtRisk: &agent.ScreenRisk{Wanted: "late@1 index.m3u8", Reason: "late@1 is not verified yet", Since: since}},
	}})
	for _, want := range []string{"SIGNAGE schedule store (Europe/Berlin)", "lobby", "wants late@1 index.m3u8 since 2026-12-24T08:00:00Z"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printSignage(&b, nil)
	if b.Len() != 0 {
		t.Errorf("printed without signage: %q", b.String())
	}
}

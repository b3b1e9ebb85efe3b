package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The publisher's path end to end through the CLI: a code table signed,
// extended (existing codewords kept), a watermarked release published,
// and trace naming a site from a copy, from a detector's sequence, and
// refusing (exit 2) what it cannot tell.
func TestCodesPublishTrace(t *testing.T) {
	cat, keys := initCatalog(t)
	cl := []string{"--catalog", cat, "--keys", keys}
	ro := []string{"--catalog", cat, "--root", filepath.Join(keys, "root.json")}
	if _, errOut, code := swarmship(t, append([]string{"catalog", "codes", "add", "stores", "--site", "s1,s2", "--length", "8", "--min-distance", "4"}, cl...)...); code != 0 {
		t.Fatalf("codes add: %s", errOut)
	}
	show := func() map[string]string {
		out, errOut, code := swarmship(t, append([]string{"catalog", "codes", "show", "stores", "-o", "json", "--state", t.TempDir()}, ro...)...)
		if code != 0 {
			t.Fatalf("codes show: %s", errOut)
		}
		var tab struct{ Sites map[string]string }
		if err := json.Unmarshal([]byte(out), &tab); err != nil {
			t.Fatal(err)
		}
		return tab.Sites
	}
	first := show()
	out, errOut, code := swarmship(t, append([]string{"catalog", "codes", "add", "stores", "--site", "s3", "--site", "s1"}, cl...)...)
	if code != 0 || !strings.Contains(out, "3 sites (1 new)") {
		t.Fatalf("codes add s3: %d %s %s", code, out, errOut)
	}
	second := show()
	if second["s1"] != first["s1"] || second["s2"] != first["s2"] || len(second) != 3 {
		t.Fatalf("codewords changed: %v then %v", first, second)
	}
	if _, errOut, code := swarmship(t, append([]string{"catalog", "codes", "add", "stores", "--site", "s4", "--length", "16"}, cl...)...); code == 0 || !strings.Contains(errOut, "cannot change") {
		t.Fatalf("changing the length: %d %s", code, errOut)
	}

	segs := map[string]string{"index.m3u8": "#EXTM3U\n"}
	segsB := map[string]string{"index.m3u8": "#EXTM3U\n"}
	for i := range 8 {
		n := "seg" + string(rune('0'+i)) + ".ts"
		segs[n], segsB[n] = "A"+n, "B"+n
	}
	a, b := payload(t, segs), payload(t, segsB)
	if _, errOut, code := swarmship(t, append([]string{"publish", a, "--variant-b", b, "--codes", "stores", "--name", "promo", "--version", "1"}, cl...)...); code != 0 {
		t.Fatalf("publish: %s", errOut)
	}
	// s2's copy, as its agent would assemble it.
	leak := t.TempDir()
	for i := range 8 {
		n := "seg" + string(rune('0'+i)) + ".ts"
		src := a
		if second["s2"][i] == '1' {
			src = b
		}
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(leak, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trace := func(args ...string) (TraceResult, int) {
		out, errOut, code := swarmship(t, append(append([]string{"trace", "--release", "promo@1", "-o", "json", "--state", t.TempDir()}, args...), ro...)...)
		var res TraceResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("trace: %v %d %s %s", err, code, out, errOut)
		}
		return res, code
	}
	if res, code := trace(leak); code != 0 || res.Site != "s2" || res.Distance != 0 {
		t.Fatalf("trace of s2's copy: %d %+v", code, res)
	}
	seq := strings.NewReplacer("0", "A", "1", "B").Replace(second["s3"])
	if res, code := trace("--sequence", seq); code != 0 || res.Site != "s3" {
		t.Fatalf("trace of s3's sequence: %d %+v", code, res)
	}
	if res, code := trace("--sequence", "--------"); code != 2 || res.Site != "" {
		t.Fatalf("trace of nothing: %d %+v", code, res)
	}
}

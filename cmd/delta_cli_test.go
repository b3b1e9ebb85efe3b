package cmd

import (
	"encoding/json"
	"strings"
	"testing"
)

// Publishing into a channel computes hints against the channel's version;
// publish and catalog show say how much of the release is new.
func TestCLIDeltaHints(t *testing.T) {
	cat, keys := initCatalog(t)
	big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
	v1 := payload(t, map[string]string{"bin/app": big, "README": "hello"})
	out, errOut, code := swarmship(t, "publish", v1, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "1.0", "--channel", "stable")
	if code != 0 || !strings.Contains(out, "first release in channel stable") {
		t.Fatalf("publish 1.0: %d\n%s%s", code, out, errOut)
	}
	v2 := payload(t, map[string]string{"bin/app": big[:100000] + "NEW BYTES" + big[100000:], "README": "hello", "extra": "added"})
	out, errOut, code = swarmship(t, "publish", v2, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "2.0", "--channel", "stable")
	if code != 0 || !strings.Contains(out, "delta     against 1.0:") {
		t.Fatalf("publish 2.0: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = swarmship(t, "catalog", "show", "app@2.0", "--catalog", cat, "--keys", keys)
	if code != 0 || !strings.Contains(out, "delta     against 1.0:") || !strings.Contains(out, "NEW") {
		t.Fatalf("show 2.0: %d\n%s%s", code, out, errOut)
	}
	out, _, code = swarmship(t, "catalog", "show", "app@2.0", "--catalog", cat, "--keys", keys, "-o", "json")
	var shown struct {
		DeltaSummary struct {
			Base         string
			HintedBytes  int64   `json:"hinted_bytes"`
			NewBytes     int64   `json:"new_bytes"`
			FileNewBytes []int64 `json:"file_new_bytes"`
		} `json:"delta_summary"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil {
		t.Fatalf("show -o json: %v\n%s", err, out)
	}
	// Files in order README, bin/app, extra: only the inserted bytes and
	// the added file are new.
	d := shown.DeltaSummary
	if d.Base != "1.0" || d.NewBytes != int64(len("NEW BYTES")+len("added")) || len(d.FileNewBytes) != 3 || d.FileNewBytes[1] != 9 {
		t.Fatalf("delta summary %+v", d)
	}
	out, _, code = swarmship(t, "publish", v2, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "2.1", "--base", "none")
	if code != 0 || !strings.Contains(out, "delta     none") {
		t.Fatalf("publish --base none: %d\n%s", code, out)
	}
	out, _, _ = swarmship(t, "catalog", "show", "app@2.1", "--catalog", cat, "--keys", keys)
	if strings.Contains(out, "delta") {
		t.Fatalf("show of a release without hints mentions a delta:\n%s", out)
	}
}

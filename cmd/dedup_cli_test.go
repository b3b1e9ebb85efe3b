package cmd

import (
	"encoding/json"
	"strings"
	"testing"
)

// Publish says how many bytes went up and how many the catalog reused:
// unchanged files are copied in the store, a changed file is built from the
// base plus its new bytes, and only those are uploaded.
func TestCLIPublishReportsReuse(t *testing.T) {
	cat, keys := initCatalog(t)
	big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
	v1 := payload(t, map[string]string{"bin/app": big, "README": "hello"})
	out, errOut, code := swarmship(t, "publish", v1, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "1.0", "--channel", "stable")
	if code != 0 || !strings.Contains(out, "uploaded  ") {
		t.Fatalf("publish 1.0: %d\n%s%s", code, out, errOut)
	}
	v2 := payload(t, map[string]string{"bin/app": big[:100000] + "NEW BYTES" + big[100000:], "README": "hello", "extra": "added"})
	out, errOut, code = swarmship(t, "publish", v2, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "2.0", "--channel", "stable", "-o", "json")
	var res struct {
		Uploaded int64 `json:"uploaded_bytes"`
		Reused   int64 `json:"reused_bytes"`
		Whole    int   `json:"reused_files"`
		Composed int   `json:"composed_files"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("publish 2.0: %d %v\n%s%s", code, err, out, errOut)
	}
	if res.Uploaded != int64(len("NEW BYTES")+len("added")) || res.Whole != 1 || res.Composed != 1 || res.Reused != int64(len(big)+len("hello")) {
		t.Fatalf("publish 2.0 -o json: %+v", res)
	}
}

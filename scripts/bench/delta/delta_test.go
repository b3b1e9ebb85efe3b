package main

import (
	"strings"
	"testing"

	"github.com/swarmship/swarmship/internal/deltapair"
	"github.com/swarmship/swarmship/internal/testenv"
)

// TestDeltaBenchSmall runs the whole benchmark on a pair of a few MiB so
// that it cannot rot: every method must rebuild v2 exactly (run checks),
// and the figures must be sane.
func TestDeltaBenchSmall(t *testing.T) {
	for _, tool := range []string{"zsync", "zsyncmake", "rsync"} {
		testenv.RequireTool(t, tool)
	}
	cfg := config{Spec: deltapair.Spec{Size: 4 << 20, Files: 40}, Dir: t.TempDir(), GW: testenv.StartVersityGW(t)}
	rep, err := run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.print(&b)
	t.Log("\n" + b.String())
	p := rep.Pair
	if len(rep.Results) != 6 {
		t.Fatalf("%d results; want zsync, rsync, publish dir and S3 without and with hints", len(rep.Results))
	}
	for _, r := range rep.Results {
		// Every method moves at least the new bytes (all incompressible)
		// and less than the whole of v2.
		if r.Bytes < p.ChangedBytes || r.Bytes >= p.V2Size {
			t.Errorf("%s moved %d bytes; want between the %d changed bytes and the %d of v2", r.Method, r.Bytes, p.ChangedBytes, p.V2Size)
		}
		if strings.HasPrefix(r.Method, "swarmship publish") && float64(r.Bytes) > 1.1*float64(p.ChangedFileBytes) {
			t.Errorf("%s wrote %d bytes; want at most 1.1 x the %d bytes of changed files", r.Method, r.Bytes, p.ChangedFileBytes)
		}
		if r.Method == "swarmship publish, directory, hints" && float64(r.Bytes) > 1.1*float64(p.ChangedBytes) {
			t.Errorf("%s wrote %d bytes; want at most 1.1 x the %d changed bytes", r.Method, r.Bytes, p.ChangedBytes)
		}
	}
}

package catalog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/catalog"
)

// FuzzTUFMetadata serves arbitrary bytes as metadata/timestamp.json of an
// otherwise valid catalog. The client must never panic, and must refuse
// every timestamp except the one the catalog signed. TUF signs the
// canonical form of the "signed" object, so the signed timestamp may be
// re-encoded (whitespace, key order, escapes) and still verify; what must
// never get through is a timestamp whose signed content differs.
func FuzzTUFMetadata(f *testing.F) {
	ctx := context.Background()
	base := f.TempDir()
	storeDir := filepath.Join(base, "catalog")
	if err := os.Mkdir(storeDir, 0o755); err != nil {
		f.Fatal(err)
	}
	store, err := catalog.NewDirStore(storeDir)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(base, "keys"))
	if err != nil {
		f.Fatal(err)
	}
	root, err := catalog.Init(ctx, store, keys, catalog.DefaultExpiry, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	tsPath := filepath.Join(store.Root(), "metadata", "timestamp.json")
	valid, err := os.ReadFile(tsPath)
	if err != nil {
		f.Fatal(err)
	}
	validSigned := timestampSigned(valid)
	if validSigned == nil {
		f.Fatal("the catalog's own timestamp does not parse")
	}
	states := filepath.Join(base, "states")
	if err := os.Mkdir(states, 0o755); err != nil {
		f.Fatal(err)
	}

	// refresh serves ts as the timestamp to a client with fresh local
	// state (so nothing trusted from an earlier input interferes). A
	// failure of the harness itself is reported by fatal.
	refresh := func(fatal func(...any), ts []byte) error {
		if err := os.WriteFile(tsPath, ts, 0o644); err != nil {
			fatal(err)
		}
		state, err := os.MkdirTemp(states, "s")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(state)
		cl, err := catalog.NewClient(store, root, state)
		if err != nil {
			fatal(err)
		}
		return cl.Refresh(ctx)
	}

	// The setup is right: the real timestamp is accepted, and a change to
	// its signed content is noticed.
	if err := refresh(f.Fatal, valid); err != nil {
		f.Fatalf("the catalog's own timestamp is refused: %v", err)
	}
	variant := func(edit func(signed map[string]any)) []byte {
		var d map[string]any
		if err := json.Unmarshal(valid, &d); err != nil {
			f.Fatal(err)
		}
		edit(d["signed"].(map[string]any))
		b, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	bumped := variant(func(s map[string]any) { s["version"] = s["version"].(float64) + 1 })
	if err := refresh(f.Fatal, bumped); err == nil {
		f.Fatal("a timestamp with a changed version but the old signature was accepted")
	}

	f.Add(valid)
	var indented bytes.Buffer
	if err := json.Indent(&indented, valid, "", "  "); err != nil {
		f.Fatal(err)
	}
	f.Add(indented.Bytes()) // the signed timestamp, re-encoded: accepted
	f.Add(bumped)
	f.Add(variant(func(s map[string]any) { s["expires"] = "2000-01-01T00:00:00Z" }))
	f.Add(variant(func(s map[string]any) { s["_type"] = "snapshot" }))
	f.Add(variant(func(s map[string]any) { s["spec_version"] = "2.0.0" }))
	f.Add(variant(func(s map[string]any) { s["meta"] = map[string]any{} }))
	f.Add(variant(func(s map[string]any) { s["extra"] = true }))
	f.Add(variant(func(s map[string]any) {
		m := s["meta"].(map[string]any)["snapshot.json"].(map[string]any)
		m["version"] = 99
	}))
	f.Add(variant(func(s map[string]any) {
		m := s["meta"].(map[string]any)["snapshot.json"].(map[string]any)
		m["length"] = -1
	}))
	f.Add(variant(func(s map[string]any) {
		m := s["meta"].(map[string]any)["snapshot.json"].(map[string]any)
		m["hashes"] = map[string]any{"sha256": "00"}
	}))
	unsigned := bytes.Replace(valid, []byte(`"signatures"`), []byte(`"signaturez"`), 1)
	f.Add(unsigned)
	f.Add([]byte(strings.Replace(string(valid), `"sig":"`, `"sig":"00`, 1)))
	f.Add(valid[:len(valid)/2])
	f.Add(append(bytes.Clone(valid), '{', '}'))
	f.Add([]byte{})
	f.Add([]byte("null"))
	f.Add([]byte(`{"signed":{},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"timestamp","version":1},"signatures":[{"keyid":"x","sig":"y"}]}`))
	f.Add(bytes.Repeat([]byte("["), 10000))

	f.Fuzz(func(t *testing.T, b []byte) {
		err := refresh(t.Fatal, b)
		if err != nil || bytes.Equal(b, valid) {
			return
		}
		got := timestampSigned(b)
		if got == nil || !bytes.Equal(got, validSigned) {
			t.Fatalf("Refresh accepted a timestamp whose signed content is not the catalog's:\n%s\nwant signed %s", b, validSigned)
		}
	})
}

// timestampSigned is the canonical encoding of a timestamp's signed part,
// or nil if b is not a timestamp.
func timestampSigned(b []byte) []byte {
	md, err := metadata.Timestamp().FromBytes(b)
	if err != nil {
		return nil
	}
	out, err := json.Marshal(md.Signed)
	if err != nil {
		return nil
	}
	return out
}

package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
)

// TestMediaAria2WebSeedS3: a media release published to S3 (public-read
// bucket as the web seed, no origin) downloads with aria2, which treats
// pad files as files and asks the bucket for <version>/.pad/<N>: publish
// put one object of zeros per pad size there.
func TestMediaAria2WebSeedS3(t *testing.T) {
	src := generateMedia(t)
	gw := testenv.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := catalog.NewS3Store(ctx, catalog.S3Config{
		Endpoint: gw.Endpoint, Bucket: bucket, AccessKey: gw.AccessKey, SecretKey: gw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetPublicRead(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Init(ctx, store, keys, catalog.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := publish.Publish(ctx, store, keys, publish.PublishOptions{Name: mediaName, Version: mediaVersion, Paths: []string{src}, Media: true})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	m := readManifest(t, store, mediaName, mediaVersion)
	var padObjects int64
	for _, n := range m.PadSizes() {
		st, err := store.Stat(ctx, catalog.PadKey(mediaName, mediaVersion, n))
		if err != nil || st.Size != n {
			t.Fatalf("pad object of %d bytes: %+v, %v", n, st, err)
		}
		padObjects += n
	}
	t.Logf("%d pad sizes, %d bytes of pad objects for %d payload bytes (%.3f%%)", len(m.PadSizes()), padObjects, res.TotalSize, 100*float64(padObjects)/float64(res.TotalSize))
	tb, err := catalog.ReadAll(ctx, store, res.TorrentKey, catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	torrentPath := filepath.Join(t.TempDir(), mediaVersion+".torrent")
	if err := os.WriteFile(torrentPath, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	startAria2Client(t, torrentPath, res.InfoHash, dir, false)(t, clientTimeout)
	checkFiles(t, filepath.Join(dir, mediaVersion), m)
}

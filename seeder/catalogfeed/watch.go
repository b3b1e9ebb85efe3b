package catalogfeed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// timestampKey is the one object a catalog change always rewrites.
const timestampKey = "metadata/timestamp.json"

// maxTimestamp bounds the read (the TUF client's own limit).
const maxTimestamp = 64 << 10

// WatchStore reads the catalog's timestamp.json every interval and calls
// changed when its bytes differ from the last read (also after the first
// read, and after the object went missing or unreadable and came back).
// It runs until ctx ends. The bytes are not trusted here: changed only
// makes the origin refresh, and the origin's TUF client decides what the
// new version is.
func WatchStore(ctx context.Context, store catalog.Store, interval time.Duration, changed func()) {
	var last [sha256.Size]byte
	seen := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		b, err := catalog.ReadAll(rctx, store, timestampKey, maxTimestamp)
		cancel()
		if err == nil {
			sum := sha256.Sum256(b)
			if !seen || !bytes.Equal(sum[:], last[:]) {
				last, seen = sum, true
				changed()
			}
		} else {
			seen = false // whatever comes back is news
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

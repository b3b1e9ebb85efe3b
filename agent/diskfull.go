package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Disk full as a pause.
//
// A write that fails (a chunk from a peer, a piece from the origin) pauses
// its release at once: no more requests to peers, no more fetches from the
// origin, and the reason in status. Left to itself the torrent library
// disables data download for the torrent's life on the first failed chunk
// write, and the origin offload kept fetching pieces it could not store.
// A probe then checks for room with back-off (free space on the cache's
// filesystem, then a small test write), the reconcile loop runs the GC
// with the disk's free space as the quota, and once a write can succeed
// peers and origin resume at full speed.

// Probe timing: the first probe comes soon; later ones back off to
// probeMax, which bounds how long a release waits once space returns. A
// release that fills the disk again soon after resuming waits longer
// before the next try (flapping), up to flapMax.
const (
	probeMin    = 100 * time.Millisecond
	probeMax    = 500 * time.Millisecond
	flapWindow  = 30 * time.Second
	flapMax     = 30 * time.Second
	diskGCEvery = 30 * time.Second
	// probeWriteMax bounds the test write that proves space is back.
	probeWriteMax = 1 << 20
)

// isNoSpace reports whether err means the filesystem or a quota is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// writeFaultReason turns a failed write into the reason shown in status,
// e.g. "disk full: no space left on device writing /cache/releases/app/2/bin".
func writeFaultReason(err error) string {
	what := "cannot write"
	if isNoSpace(err) {
		what = "disk full"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v writing %s", what, pe.Err, pe.Path)
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// writeFault is the reason writes of d fail, or "".
func (d *download) writeFault() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fault
}

// pause sets the policy's pause (the reconcile loop calls it).
func (d *download) pause(p bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = p
	d.applyLocked()
}

// applyLocked stops or resumes peers and origin alike: they run only when
// neither the policy nor a write fault holds the release. d.mu is held.
func (d *download) applyLocked() {
	halt := d.paused || d.fault != ""
	if halt == d.halted {
		return
	}
	d.halted = halt
	// Stop the offloader first: it must not start a fetch between the two.
	if halt {
		d.off.paused.Store(true)
		d.t.DisallowDataDownload()
	} else {
		d.t.AllowDataDownload()
		d.off.paused.Store(false)
	}
}

// onWriteError is called when writing release data fails: by the torrent
// library for a peer's chunk (on its own goroutine) and by the offloader
// for an origin piece. It pauses the release and starts the probe that
// resumes it.
func (a *Agent) onWriteError(d *download, err error) {
	if err == nil || errors.Is(err, context.Canceled) || d.ctx.Err() != nil {
		return // the download is being dropped or the agent closes
	}
	reason := writeFaultReason(err)
	now := time.Now()
	d.mu.Lock()
	first := d.fault == ""
	d.fault = reason
	if first {
		d.faultSince = now
		if !d.resumedAt.IsZero() && now.Sub(d.resumedAt) < flapWindow {
			d.flaps = min(d.flaps+1, 10) // 100ms<<9 is past flapMax already
		} else {
			d.flaps = 0
		}
	}
	d.applyLocked()
	flaps := d.flaps
	d.mu.Unlock()
	if !first {
		return
	}
	a.log.Warn("release paused: cannot write its data", "release", d.ref.Name, "version", d.ref.Version,
		"reason", reason, "completed", d.t.BytesCompleted(), "size", d.manifest.TotalSize)
	// Under a.mu, so that Close's wg.Wait never races this Add.
	a.mu.Lock()
	if !a.closing {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.probeRoom(d.ctx, d, min(probeMin<<flaps, flapMax))
		}()
	}
	a.mu.Unlock()
	a.poke()
}

// probeRoom waits until a write of d can succeed again, then resumes it.
func (a *Agent) probeRoom(ctx context.Context, d *download, first time.Duration) {
	delay := first
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(max(delay*2, probeMin), probeMax)
		if d.complete() {
			break
		}
		why := a.roomFor(d)
		if why == "" {
			break
		}
		d.mu.Lock()
		if why != d.fault {
			d.fault = why
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	paused := time.Since(d.faultSince)
	d.fault, d.resumedAt = "", time.Now()
	d.applyLocked()
	d.mu.Unlock()
	a.log.Info("release resumed: its data can be written again", "release", d.ref.Name, "version", d.ref.Version,
		"paused_for", paused.Round(time.Millisecond).String())
	a.poke()
}

// roomNeeded is how much free space a paused release waits for: its
// remainder, or room for a few pieces of a large one, so that it resumes
// as soon as it can make progress without filling the disk at once.
func roomNeeded(remaining, pieceLength int64) int64 {
	return max(min(remaining, max(4*pieceLength, 16<<20)), 0)
}

// roomFor says why d cannot write yet ("" once it can): free space on the
// cache's filesystem first (cheap), then a test write of real bytes, which
// also catches quotas and read-only filesystems that statfs does not show.
func (a *Agent) roomFor(d *download) string {
	dir := a.cache.releasesDir()
	need := roomNeeded(d.size()-d.t.BytesCompleted(), d.manifest.PieceLength)
	if free, ok := freeBytes(dir); ok && free < need {
		return fmt.Sprintf("disk full: %s free on %s, waiting for %s", humanSize(free), dir, humanSize(need))
	}
	if err := probeWrite(dir, min(need, probeWriteMax)); err != nil {
		return writeFaultReason(err)
	}
	return ""
}

// probeWrite writes n bytes to a temporary file in dir, syncs and removes
// it.
func probeWrite(dir string, n int64) error {
	f, err := os.CreateTemp(dir, ".space-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, max(n, 1)))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// diskFull reports whether any release waits for room to write.
func (a *Agent) diskFull() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.downloads {
		if d.writeFault() != "" {
			return true
		}
	}
	return false
}

// gcForDisk runs the GC with the filesystem's room as the quota: cached
// releases the policy may evict (not active, pinned, kept for rollback or
// downloading) go, least recently used first, until every paused
// download's remainder fits in the free space.
func (a *Agent) gcForDisk(now time.Time) {
	a.mu.Lock()
	due := now.Sub(a.pol.lastDiskGC) >= diskGCEvery
	a.mu.Unlock()
	if !due {
		return
	}
	dir := a.cache.releasesDir()
	free, ok := freeBytes(dir)
	if !ok {
		return
	}
	recs, err := a.state.All()
	if err != nil {
		return
	}
	var used int64
	for _, r := range recs {
		used += r.Size
	}
	var remaining int64
	a.mu.Lock()
	for _, d := range a.downloads {
		if !d.complete() {
			remaining += max(d.size()-d.t.BytesCompleted(), 0)
		}
	}
	a.mu.Unlock()
	// Keep a margin for the state databases and partly written pieces.
	const margin = 4 << 20
	quota := max(used+free-remaining-margin, 1)
	if q := a.quotaBytes(); q > 0 {
		quota = min(quota, q)
	}
	a.mu.Lock()
	a.pol.lastDiskGC = now
	a.mu.Unlock()
	if err := a.gcWithin(quota, 0, now); err != nil {
		a.log.Info("disk full: the GC cannot make room; waiting for space", "free", free, "remaining", remaining, "err", err)
	}
}

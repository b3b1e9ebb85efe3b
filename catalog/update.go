package catalog

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"
)

// UpdateOptions tunes Update's retries; the zero value is fine.
type UpdateOptions struct {
	Expiry Expiry
	// MaxAttempts bounds how often the change is applied to a fresh copy of
	// the catalog (default 40: enough for dozens of writers at once).
	MaxAttempts int
	// Backoff is the first retry's upper bound; each retry doubles it up
	// to 2 s and waits a uniformly random part of it, so that writers that
	// collided spread out (default 20 ms).
	Backoff time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
	// HoldTimestamp commits (the change is durable and later writers build
	// on it) without pointing timestamp.json at it, so readers do not see
	// it yet; a later Update, or Publish on a Repo, does that. publish uses
	// it to put a release's bytes in place before agents learn of it.
	HoldTimestamp bool
}

// Update applies fn to the newest catalog and commits it, and when another
// writer commits first (ErrConflict) loads the catalog again and re-applies
// fn, with jittered back-off, up to MaxAttempts times. fn must derive its
// change only from the Repo it is given, since it may run several times;
// an error from fn ends Update with that error. If fn changes nothing,
// nothing is signed, but a timestamp left behind by a writer that died
// after its commit point is brought forward. Update returns how many times
// it had to retry.
func Update(ctx context.Context, store Store, keys Keys, opts UpdateOptions, fn func(*Repo) error) (retries int, err error) {
	if opts.Expiry == (Expiry{}) {
		opts.Expiry = DefaultExpiry
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 40
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 20 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := CheckCreateOnly(ctx, store); err != nil {
		return 0, err
	}
	backoff := opts.Backoff
	for attempt := 1; ; attempt++ {
		repo, err := OpenRepo(ctx, store, keys, opts.Expiry)
		if err != nil {
			return attempt - 1, err
		}
		repo.holdTimestamp = opts.HoldTimestamp
		if err := fn(repo); err != nil {
			return attempt - 1, err
		}
		switch {
		case repo.Dirty():
			err = repo.Commit(ctx, opts.Now())
		case repo.resign:
			err = repo.Resign(ctx, opts.Now())
		case opts.HoldTimestamp:
			return attempt - 1, nil
		default:
			return attempt - 1, repo.Publish(ctx, opts.Now())
		}
		if err == nil {
			if attempt > 1 {
				log.Info("catalog committed after conflicts", "store", store.String(), "retries", attempt-1)
			}
			return attempt - 1, nil
		}
		if !errors.Is(err, ErrConflict) {
			return attempt - 1, err
		}
		if attempt >= opts.MaxAttempts {
			return attempt - 1, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		log.Debug("catalog commit conflict; reloading", "store", store.String(), "attempt", attempt, "wait", wait)
		select {
		case <-ctx.Done():
			return attempt - 1, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// createOnlyProbeKey is overwritten by every probe; nothing reads it.
const createOnlyProbeKey = metadataPrefix + "create-only-probe"

var probed sync.Map // Store → nil or the probe's error

// CheckCreateOnly makes sure store really refuses a create-only write of a
// key that exists: an S3 server that ignores If-None-Match would let two
// publishers overwrite each other's commits silently. It writes a probe
// object and tries to create it again; the answer is remembered per store.
func CheckCreateOnly(ctx context.Context, store Store) error {
	// Only pointers are remembered: other values may not be comparable.
	cacheable := reflect.TypeOf(store).Kind() == reflect.Pointer
	if cacheable {
		if v, ok := probed.Load(store); ok {
			if v == nil {
				return nil
			}
			return v.(error)
		}
	}
	c, ok := store.(CreateOnlyStore)
	if !ok {
		return fmt.Errorf("cannot write the catalog in %s: %w", store, ErrNoConditionalWrite)
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	mine := []byte(hex.EncodeToString(b[:]))
	if err := store.Put(ctx, createOnlyProbeKey, bytes.NewReader(mine), int64(len(mine))); err != nil {
		return err
	}
	other := []byte("probe: must not replace the object")
	err := c.PutIfAbsent(ctx, createOnlyProbeKey, bytes.NewReader(other), int64(len(other)))
	switch {
	case errors.Is(err, ErrExists):
		if cacheable {
			probed.Store(store, nil)
		}
		return nil
	case err == nil:
		err = fmt.Errorf("cannot write the catalog in %s: it ignored a create-only write (If-None-Match) and replaced an existing object: %w", store, ErrNoConditionalWrite)
		if cacheable {
			probed.Store(store, err)
		}
		return err
	default:
		return fmt.Errorf("probe the create-only write of %s: %w", store, err)
	}
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	backoff := opts.Backoff
	for attempt := 1; ; attempt++ {
		repo, err := OpenRepo(ctx, store, keys, opts.Expiry)
		if err != nil {
			return attempt - 1, err
		}
		if err := fn(repo); err != nil {
			return attempt - 1, err
		}
		switch {
		case repo.Dirty():
			err = repo.Commit(ctx, opts.Now())
		case repo.resign:
			err = repo.Resign(ctx, opts.Now())
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

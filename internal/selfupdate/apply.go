package selfupdate

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Plan is one update of the installed binary.
type Plan struct {
	StatePath string // State file
	Binary    string // installed binary, replaced
	Source    string // verified release file holding the new binary
	Version   string // the release's version: the new binary must report it
	Own       string // version of the running binary
	Marker    string // health marker path
	Args      []string
	// HealthTimeout bounds the trial; StopGrace how long the binary on
	// trial has to stop after SIGTERM.
	HealthTimeout, StopGrace time.Duration
	Now                      func() time.Time `json:"-"`
}

// afterStep lets tests kill the process between steps (kill -9 at each).
var afterStep = func(step string) {}

// Apply tries the new binary and installs it if healthy. It returns
// installed true when Binary now holds the new version (the caller hands
// over to it); false with a nil error when the version was rolled back
// and recorded as bad, so the caller keeps running as it is. An error
// means nothing was decided (state unwritable, ctx ended); the installed
// binary is unchanged then.
func Apply(ctx context.Context, p Plan) (installed bool, err error) {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	st, err := Load(p.StatePath)
	if err != nil {
		return false, err
	}
	if st.Trial != p.Version {
		st.Trial, st.Attempts = p.Version, 0
	}
	st.From = p.Own
	st.Attempts++
	if err := Save(p.StatePath, st); err != nil {
		return false, err
	}
	afterStep("trial-recorded")
	fail := func(reason string) (bool, error) {
		os.Remove(StagedPath(p.Binary))
		st.MarkBad(p.Version, p.Own, reason, now())
		return false, Save(p.StatePath, st)
	}
	staged, err := Stage(p.Binary, p.Source)
	if err != nil {
		return fail(err.Error())
	}
	afterStep("staged")
	if err := Trial(ctx, staged, p.Args, p.Version, p.Marker, p.HealthTimeout, p.StopGrace); err != nil {
		if ctx.Err() != nil {
			os.Remove(staged)
			return false, ctx.Err() // shutting down: not the version's fault
		}
		return fail("trial: " + err.Error())
	}
	afterStep("healthy")
	if err := Install(p.Binary, staged); err != nil {
		return fail(err.Error())
	}
	afterStep("installed")
	st.Previous = p.Own
	st.Trial, st.From, st.Attempts = "", "", 0
	st.Last = &Event{Version: p.Version, From: p.Own, Result: Updated, At: now()}
	if err := Save(p.StatePath, st); err != nil {
		// The new binary finishes the record (Recover) when it starts.
		return true, fmt.Errorf("installed %s; %w", p.Version, err)
	}
	return true, nil
}

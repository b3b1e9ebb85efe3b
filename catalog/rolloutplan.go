package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/release"
)

// A rollout plan is a signed target (rollouts/NAME.json) next to the
// releases: which version of NAME goes out in which waves, and the signed
// state of the rollout (how many waves are open, paused, halted). Agents
// activate a version that has a plan only when their wave is open in the
// signed plan; nothing unsigned can open a wave. Every change (a wave
// opened, a halt, a pause) is a new signed version of the same target,
// written through Update's compare-and-swap.

// maxPlanBytes bounds a plan target; a plan is a few hundred bytes.
const maxPlanBytes = 64 << 10

// RolloutPlan is one rollout of Name@Version.
type RolloutPlan struct {
	// ID is random per `rollout start`; wave assignment hashes it.
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Channel string `json:"channel,omitempty"`
	// Waves in `rollout start --waves` syntax, one per element: "10%",
	// "label:canary", "site:a+b" (policy.ParseWaves reads them).
	Waves []string `json:"waves"`
	// Soak is how long each wave runs before the gate opens the next.
	Soak Duration `json:"soak"`
	// MaxFailures is the share (0..1) of agents that tried the version and
	// failed above which the gate halts.
	MaxFailures float64   `json:"max_failures"`
	Started     time.Time `json:"started"`

	State  string    `json:"state"`
	Opened int       `json:"opened"` // waves open
	Since  time.Time `json:"since"`  // when the newest wave opened
	// Reason says why the rollout is paused, halted or aborted.
	Reason  string    `json:"reason,omitempty"`
	Changed time.Time `json:"changed"`
	// Retry is raised by `rollout resume --retry`: agents whose health
	// check failed this version try it again once per new value.
	Retry int `json:"retry,omitempty"`
	// Accepted is how many failed agents the gate counted when it last
	// halted: a resume accepts them, and the gate then counts only
	// failures beyond them.
	Accepted int `json:"accepted,omitempty"`
}

// Duration is a time.Duration written as "30m" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as Go's duration syntax.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads Go's duration syntax.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Rollout states. package policy decides on the same words
// (policy.RolloutRunning, ...); seeder/wavegate's tests keep them equal.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutHalted  = "halted"
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// Validate checks a plan as agents and tools read it: a bad plan is
// refused whole.
func (p *RolloutPlan) Validate() error {
	if p.ID == "" || len(p.ID) > 64 {
		return errors.New("rollout plan: id missing or too long")
	}
	if err := release.ValidateName("name", p.Name); err != nil {
		return fmt.Errorf("rollout plan: %w", err)
	}
	if err := release.ValidateName("version", p.Version); err != nil {
		return fmt.Errorf("rollout plan: %w", err)
	}
	if p.Channel != "" {
		if err := release.ValidateName("channel", p.Channel); err != nil {
			return fmt.Errorf("rollout plan: %w", err)
		}
	}
	// The wave syntax is policy's; here only its shape.
	if len(p.Waves) == 0 || len(p.Waves) > 20 {
		return fmt.Errorf("rollout plan: %d waves, want 1 to 20", len(p.Waves))
	}
	for _, w := range p.Waves {
		if w == "" || len(w) > 1024 || strings.Contains(w, ",") {
			return fmt.Errorf("rollout plan: bad wave %q", w)
		}
	}
	if p.Soak < 0 {
		return errors.New("rollout plan: negative soak")
	}
	if !(p.MaxFailures >= 0 && p.MaxFailures <= 1) {
		return errors.New("rollout plan: max_failures must be within 0..1")
	}
	switch p.State {
	case RolloutRunning, RolloutPaused, RolloutHalted, RolloutAborted, RolloutDone:
	default:
		return fmt.Errorf("rollout plan: unknown state %q", p.State)
	}
	if p.Accepted < 0 || p.Retry < 0 {
		return errors.New("rollout plan: negative accepted or retry")
	}
	if p.Opened < 0 || p.Opened > len(p.Waves) {
		return fmt.Errorf("rollout plan: %d waves open of %d", p.Opened, len(p.Waves))
	}
	return nil
}

// RolloutPlanKey is the target path of name's rollout plan.
func RolloutPlanKey(name string) string { return "rollouts/" + name + ".json" }

// ParseRolloutPlan decodes and validates a plan strictly.
func ParseRolloutPlan(b []byte) (*RolloutPlan, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p RolloutPlan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("rollout plan: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetRolloutPlan signs p as name's plan (replacing any earlier one). Its
// bytes go to the store under their content-addressed name first, so a
// writer that loses the commit race leaves only an unsigned leftover.
func (r *Repo) SetRolloutPlan(ctx context.Context, p *RolloutPlan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if _, ok := r.targets.Signed.Targets[ManifestKey(p.Name, p.Version)]; !ok {
		return fmt.Errorf("%s@%s is not in the catalog: %w", p.Name, p.Version, ErrNotFound)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	key := RolloutPlanKey(p.Name)
	tf, err := metadata.TargetFile().FromBytes(key, b, "sha256")
	if err != nil {
		return err
	}
	if old, ok := r.targets.Signed.Targets[key]; ok && old.Hashes.Equal(tf.Hashes) {
		return nil
	}
	if err := PutHashedTarget(ctx, r.store, key, b); err != nil {
		return err
	}
	r.targets.Signed.Targets[key] = tf
	r.dirty = true
	return nil
}

// RolloutPlan reads name's plan from the loaded catalog, or nil when it has
// none.
func (r *Repo) RolloutPlan(ctx context.Context, name string) (*RolloutPlan, error) {
	tf, ok := r.targets.Signed.Targets[RolloutPlanKey(name)]
	if !ok {
		return nil, nil
	}
	b, err := readTargetCopy(ctx, r.store, tf, TargetKeys(tf)[0])
	if err != nil {
		return nil, err
	}
	return ParseRolloutPlan(b)
}

// RolloutPlan fetches and verifies name's signed plan, or nil when the
// catalog has none.
func (c *Client) RolloutPlan(ctx context.Context, name string) (*RolloutPlan, error) {
	b, err := c.Target(ctx, RolloutPlanKey(name), maxPlanBytes)
	if errors.Is(err, ErrNotFound) {
		if _, _, kerr := c.targetKeys(RolloutPlanKey(name), maxPlanBytes); errors.Is(kerr, ErrNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return ParseRolloutPlan(b)
}

// ChangeRolloutPlan applies fn to name's signed plan and signs the result,
// through Update (fn may run more than once: it must derive the change
// from the plan it is given). now stamps Changed.
func ChangeRolloutPlan(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, fn func(*RolloutPlan) error) (*RolloutPlan, error) {
	var out *RolloutPlan
	_, err := Update(ctx, store, keys, opts, func(r *Repo) error {
		p, err := r.RolloutPlan(ctx, name)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("no rollout plan for %s: %w", name, ErrNotFound)
		}
		if err := fn(p); err != nil {
			return err
		}
		if opts.Now != nil {
			p.Changed = opts.Now().UTC()
		} else {
			p.Changed = time.Now().UTC()
		}
		out = p
		return r.SetRolloutPlan(ctx, p)
	})
	return out, err
}

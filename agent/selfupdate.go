package agent

import (
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/selfupdate"
	"github.com/swarmship/swarmship/policy"
)

// SelfUpdateConfig subscribes the agent to its own binary, published as a
// release like any other (docs/operations.md, "The agent updates itself").
type SelfUpdateConfig struct {
	// Release is the release holding the swarmship binaries; empty: off.
	Release string `yaml:"release"`
	// Channel is followed; default stable.
	Channel string `yaml:"channel"`
	// File is the binary's path inside the release; default
	// swarmship-<GOOS>-<GOARCH>.
	File string `yaml:"file"`
	// Binary is the installed binary replaced; default the running one.
	Binary string `yaml:"binary"`
	// Restart is how the new binary takes over once healthy: "exec"
	// (default: the agent execs it with the same arguments) or "exit"
	// (the agent exits with ExitCode; systemd's Restart= starts it).
	Restart  string `yaml:"restart"`
	ExitCode int    `yaml:"exit_code"`
	// HealthTimeout is how long a new binary on trial has to refresh the
	// catalog and serve status before it is rolled back; default 2m.
	HealthTimeout time.Duration `yaml:"health_timeout"`
}

// Restart modes of self_update.
const (
	RestartExec = "exec"
	RestartExit = "exit"
)

// Enabled reports whether the agent follows a swarmship release.
func (c SelfUpdateConfig) Enabled() bool { return c.Release != "" }

func (c SelfUpdateConfig) withDefaults() SelfUpdateConfig {
	if !c.Enabled() {
		return c
	}
	if c.Channel == "" {
		c.Channel = "stable"
	}
	if c.File == "" {
		c.File = "swarmship-" + runtime.GOOS + "-" + runtime.GOARCH
	}
	if c.Restart == "" {
		c.Restart = RestartExec
	}
	if c.ExitCode == 0 {
		c.ExitCode = 75 // EX_TEMPFAIL
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = 2 * time.Minute
	}
	return c
}

func (c SelfUpdateConfig) validate() error {
	if !c.Enabled() {
		if c != (SelfUpdateConfig{}) {
			return fielderr.New("release", "is required when self_update is set")
		}
		return nil
	}
	if err := release.ValidateName("release", c.Release); err != nil {
		return fielderr.New("release", "%v", err)
	}
	if err := release.ValidateName("channel", c.Channel); err != nil {
		return fielderr.New("channel", "%v", err)
	}
	if c.File != path.Clean(c.File) || path.IsAbs(c.File) || strings.HasPrefix(c.File, "..") {
		return fielderr.New("file", "%q must be a clean relative path inside the release", c.File)
	}
	if c.Binary != "" && !filepath.IsAbs(c.Binary) {
		return fielderr.New("binary", "%q must be absolute", c.Binary)
	}
	if c.Restart != RestartExec && c.Restart != RestartExit {
		return fielderr.New("restart", "%q: want %s or %s", c.Restart, RestartExec, RestartExit)
	}
	// 1 is any error and 2 sync's "not done": neither may mean "restart me".
	if c.ExitCode < 3 || c.ExitCode > 125 {
		return fielderr.New("exit_code", "%d: want 3-125", c.ExitCode)
	}
	if c.HealthTimeout < time.Second {
		return fielderr.New("health_timeout", "must be at least 1s")
	}
	return nil
}

// subscription is the implicit subscription to the swarmship release.
func (c SelfUpdateConfig) subscription() Subscription {
	return Subscription{Name: c.Release, Channel: c.Channel, Keep: 1}.withDefaults()
}

// SelfUpdateStatePath is where the self-update state lives in cache_dir.
func SelfUpdateStatePath(cacheDir string) string {
	return filepath.Join(cacheDir, "state", "selfupdate.json")
}

// SelfUpdate is returned by Run when the agent should hand over to a new
// binary: File is the verified release file holding it.
type SelfUpdate struct {
	Version string
	File    string
}

func (u *SelfUpdate) Error() string {
	return fmt.Sprintf("self-update to %s ready (%s)", u.Version, u.File)
}

// SelfUpdateStatus is the self-update part of the status.
type SelfUpdateStatus struct {
	Version  string            `json:"version"` // of the running binary
	Release  string            `json:"release,omitempty"`
	Active   string            `json:"active,omitempty"` // version active in the cache
	Previous string            `json:"previous,omitempty"`
	OnTrial  bool              `json:"on_trial,omitempty"`
	Last     *selfupdate.Event `json:"last,omitempty"`
	Bad      map[string]string `json:"bad,omitempty"` // versions rolled back, not retried
}

// selfUpdateDue returns the update to hand over to, or nil.
func (a *Agent) selfUpdateDue() *SelfUpdate {
	c := a.cfg.SelfUpdate
	if !c.Enabled() {
		return nil
	}
	active := a.cache.activeVersion(c.Release)
	v, why := policy.SelfUpdateTarget(a.version, active, a.selfState.Bad, selfupdate.OnTrial())
	if v == "" {
		if why != a.selfWhy {
			a.selfWhy = why
			a.log.Debug("self-update", "release", c.Release, "version", a.version, "why_not", why)
		}
		return nil
	}
	a.log.Info("self-update ready", "release", c.Release, "from", a.version, "to", v)
	return &SelfUpdate{Version: v, File: filepath.Join(a.cache.releaseDir(c.Release, v), filepath.FromSlash(c.File))}
}

// noteRefreshed writes the health marker after the first successful
// refresh of a binary on trial (the status API is up by then).
func (a *Agent) noteRefreshed() {
	if a.healthWritten || !selfupdate.OnTrial() {
		return
	}
	if err := selfupdate.WriteHealth(a.version); err != nil {
		a.log.Error("self-update health marker", "err", err)
		return
	}
	a.healthWritten = true
}

func (a *Agent) selfUpdateStatus() *SelfUpdateStatus {
	c := a.cfg.SelfUpdate
	st := &SelfUpdateStatus{Version: a.version, OnTrial: selfupdate.OnTrial()}
	if !c.Enabled() {
		return st
	}
	st.Release = c.Release
	st.Active = a.cache.activeVersion(c.Release)
	st.Previous, st.Last, st.Bad = a.selfState.Previous, a.selfState.Last, a.selfState.Bad
	return st
}

// withSelfSubscription returns cfg with the swarmship release subscribed,
// when self_update is on (a copy: the caller's config is left as read).
func (c *Config) withSelfSubscription() *Config {
	if !c.SelfUpdate.Enabled() {
		return c
	}
	for _, s := range c.Subscriptions {
		if s.Name == c.SelfUpdate.Release {
			return c // validated: only in code-built configs
		}
	}
	cp := *c
	cp.Subscriptions = append(slices.Clip(c.Subscriptions), c.SelfUpdate.subscription())
	return &cp
}

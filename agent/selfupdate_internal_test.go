package agent

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSelfUpdateConfig(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig+"self_update:\n  release: swarmship\n"))
	if err != nil {
		t.Fatal(err)
	}
	su := c.SelfUpdate
	if su.Channel != "stable" || su.File != "swarmship-"+runtime.GOOS+"-"+runtime.GOARCH || su.Restart != RestartExec ||
		su.ExitCode != 75 || su.HealthTimeout != 2*time.Minute {
		t.Errorf("defaults %+v", su)
	}
	withSub := c.withSelfSubscription()
	if n := len(withSub.Subscriptions); n != len(c.Subscriptions)+1 || withSub.Subscriptions[n-1].Name != "swarmship" {
		t.Errorf("implicit subscription missing: %+v", withSub.Subscriptions)
	}
	if len(c.Subscriptions) == len(withSub.Subscriptions) {
		t.Error("the caller's config was changed")
	}
	for _, bad := range []struct{ yaml, why string }{
		{"self_update:\n  channel: beta\n", "self_update.release"},
		{"self_update:\n  release: swarmship\n  restart: reboot\n", "self_update.restart"},
		{"self_update:\n  release: swarmship\n  exit_code: 1\n", "self_update.exit_code"},
		{"self_update:\n  release: swarmship\n  file: ../x\n", "self_update.file"},
		{"self_update:\n  release: swarmship\n  binary: bin/swarmship\n", "self_update.binary"},
		{"self_update:\n  release: swarmship\n  health_timeout: 10ms\n", "self_update.health_timeout"},
		{"self_update:\n  release: swarmship\n  bogus: 1\n", "bogus"},
		{"self_update:\n  release: app\n", "also in subscriptions"},
	} {
		if _, err := ParseConfig("agent.yaml", []byte(goodConfig+bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.why)
		}
	}
}

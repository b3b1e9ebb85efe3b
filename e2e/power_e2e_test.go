package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// A running agent stops uploading while a modem matching
// metered_interfaces: [wwan*] is up, or while NetworkManager says the
// connection is metered, and uploads again when neither holds. The OS is
// faked: a sysfs tree in a temp dir and an nmcli on $PATH.
func TestPowerMeteredAgentStopsUploading(t *testing.T) {
	sysfs := t.TempDir()
	setOperstate := func(iface, state string) {
		t.Helper()
		dev := filepath.Join(sysfs, "devices", "virtual", "net", iface)
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		flags := "0x1002"
		if state == "up" {
			flags = "0x1003"
		}
		for k, v := range map[string]string{"operstate": state, "flags": flags} {
			if err := os.WriteFile(filepath.Join(dev, k), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		link := filepath.Join(sysfs, "class", "net", iface)
		if _, err := os.Lstat(link); err == nil {
			return
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "devices", "virtual", "net", iface), link); err != nil {
			t.Fatal(err)
		}
	}
	setOperstate("eth0", "up")
	setOperstate("wwan0", "down")

	// nmcli answers from a file the test rewrites; PATH is the process's,
	// so the agent finds it as it would the real one.
	bin := t.TempDir()
	answer := filepath.Join(bin, "answer")
	const notMetered = "GENERAL.DEVICE:eth0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:no\nIP4.GATEWAY:192.168.1.1\nIP6.GATEWAY:\n"
	const metered = "GENERAL.DEVICE:eth0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:yes\nIP4.GATEWAY:192.168.1.1\nIP6.GATEWAY:\n"
	if err := os.WriteFile(answer, []byte(notMetered), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "nmcli"), []byte("#!/bin/sh\ncat '"+answer+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	sw := newSwarm(t, localswarm.OriginOptions{})
	cfg := sw.AgentConfig("a", "site-1", "eu", agent.Subscription{Name: "app"})
	cfg.Power.SysfsRoot = sysfs
	cfg.Power.MeteredInterfaces = []string{"wwan*"}
	cfg.Power.NetworkManager = agent.NetworkManagerAuto
	ra, err := sw.StartAgent(context.Background(), "a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	uploads := func(want bool, reason string) {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
			p := ra.Agent.Status().Policy
			if p.Upload != want || !strings.Contains(p.Throttle, reason) {
				return fmt.Errorf("upload allowed %v (%q), want %v (%q)", p.Upload, p.Throttle, want, reason)
			}
			return nil
		})
	}
	uploads(true, "")

	setOperstate("wwan0", "up")
	uploads(false, "metered connection (wwan0)")
	setOperstate("wwan0", "down")
	uploads(true, "")

	// NetworkManager is asked every 10 s.
	if err := os.WriteFile(answer, []byte(metered), 0o644); err != nil {
		t.Fatal(err)
	}
	uploads(false, "metered connection (NetworkManager: eth0)")
	if err := os.WriteFile(answer, []byte(notMetered), 0o644); err != nil {
		t.Fatal(err)
	}
	uploads(true, "")
}

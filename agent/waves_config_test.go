package agent

import (
	"strings"
	"testing"
	"time"
)

func TestConfigLabelsAndHealthCheck(t *testing.T) {
	base := "catalog: {url: /srv/catalog, root: /etc/root.json}\ncache_dir: /tmp/c\nsubscriptions: [{name: app, channel: stable}]\n"
	c, err := ParseConfig("agent.yaml", []byte(base+"labels: [canary, lab-1]\nhooks:\n  timeout: 1m\n  health_check: {command: \"true\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Labels) != 2 || c.Hooks.HealthCheck.Command != "true" || c.Hooks.HealthCheck.Timeout != time.Minute {
		t.Fatalf("labels %v, health check %+v", c.Labels, c.Hooks.HealthCheck)
	}
	for in, want := range map[string]string{
		"labels: [\"a b\"]\n":                         "labels[0]",
		"hooks: {health_check: {timeout: -1s}}\n":     "health_check.timeout",
		"hooks: {health_check: {comand: \"x\"}}\n":    "comand",
		"hooks: {health_check: \"curl localhost\"}\n": "cannot unmarshal",
	} {
		if _, err := ParseConfig("agent.yaml", []byte(base+in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", in, err, want)
		}
	}
}

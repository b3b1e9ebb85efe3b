package agent

import (
	"strings"
	"testing"
	"time"
)

const goodConfig = `catalog:
  url: http://origin:7070/
  root: /etc/swarmship/root.json
tracker: http://origin:7070/announce
site: store-1
region: eu
cache_dir: /var/lib/swarmship
subscriptions:
  - name: app
    channel: stable
  - name: media
    version: "2.1"
    keep: 3
offload:
  startup_grace: 2s
`

func TestParseConfigGood(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Offload.StartupGrace != 2*time.Second || c.Offload.OrphanTimeout != 10*time.Second {
		t.Errorf("offload = %+v, want grace 2s and the default orphan timeout", c.Offload)
	}
	if c.Subscriptions[0].Keep != 1 || c.Subscriptions[1].Keep != 3 {
		t.Errorf("keep = %d, %d; want default 1 and 3", c.Subscriptions[0].Keep, c.Subscriptions[1].Keep)
	}
	if c.Status.Addr != "127.0.0.1:7071" || c.RefreshInterval != time.Minute {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseConfigErrorsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want []string // substrings of the error
	}{
		{"unknown field", func(s string) string { return strings.Replace(s, "channel: stable", "chanel: stable", 1) },
			[]string{"agent.yaml:10:", "chanel"}},
		{"bad release name", func(s string) string { return strings.Replace(s, "name: media", "name: ../media", 1) },
			[]string{"agent.yaml:11:", "subscriptions[1].name"}},
		{"channel and version", func(s string) string {
			return strings.Replace(s, `version: "2.1"`, "version: \"2.1\"\n    channel: beta", 1)
		},
			[]string{"agent.yaml:11:", "subscriptions[1]", "not both"}},
		{"missing root", func(s string) string { return strings.Replace(s, "  root: /etc/swarmship/root.json\n", "", 1) },
			[]string{"agent.yaml:1:", "catalog.root", "required"}},
		{"unknown catalog scheme", func(s string) string {
			return strings.Replace(s, "http://origin:7070/\n  root", "ftp://origin/\n  root", 1)
		},
			[]string{"agent.yaml:2:", "catalog.url", "ftp"}},
		{"tracker not http", func(s string) string {
			return strings.Replace(s, "tracker: http://origin:7070/announce", "tracker: udp://origin:1/announce", 1)
		},
			[]string{"agent.yaml:4:", "tracker"}},
		{"duplicate subscription", func(s string) string { return strings.Replace(s, "name: media", "name: app", 1) },
			[]string{"agent.yaml:11:", "subscribed twice"}},
		{"bad duration", func(s string) string { return strings.Replace(s, "startup_grace: 2s", "startup_grace: soon", 1) },
			[]string{"agent.yaml:15:", "soon"}},
		{"negative port", func(s string) string { return s + "swarm:\n  listen_port: -1\n" },
			[]string{"agent.yaml:17:", "swarm.listen_port"}},
		{"no subscriptions", func(s string) string { return s[:strings.Index(s, "subscriptions:")] },
			[]string{"agent.yaml", "subscriptions", "no releases"}},
		{"not yaml", func(string) string { return "catalog: [\n" }, []string{"agent.yaml"}},
		{"empty", func(string) string { return "" }, []string{"agent.yaml", "empty"}},
		{"site with slash", func(s string) string { return strings.Replace(s, "site: store-1", "site: a/b", 1) },
			[]string{"agent.yaml:5:", "site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(tt.edit(goodConfig)))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestOwnershipIsDisjointAndMovesOnlyDepartedShare(t *testing.T) {
	ih := [20]byte{1, 2, 3}
	var members [][20]byte
	for i := range 6 {
		members = append(members, [20]byte{byte(i + 10)})
	}
	const pieces = 600
	owner := func(ms [][20]byte, p int) int {
		found := -1
		for i, m := range ms {
			if ownsPiece(ih, m, ms, p) {
				if found >= 0 {
					t.Fatalf("piece %d owned by two members", p)
				}
				found = i
			}
		}
		if found < 0 {
			t.Fatalf("piece %d owned by nobody", p)
		}
		return found
	}
	counts := make([]int, len(members))
	before := make([]int, pieces)
	for p := range pieces {
		before[p] = owner(members, p)
		counts[before[p]]++
	}
	for i, c := range counts {
		// 100 expected each; rendezvous hashing should stay well balanced.
		if c < 60 || c > 140 {
			t.Errorf("member %d owns %d of %d pieces", i, c, pieces)
		}
	}
	// Member 2 leaves: only its pieces move.
	rest := append(append([][20]byte{}, members[:2]...), members[3:]...)
	for p := range pieces {
		after := rest[owner(rest, p)]
		if before[p] != 2 && after != members[before[p]] {
			t.Fatalf("piece %d moved from a member that stayed", p)
		}
	}
	// Alone, an agent owns everything.
	for p := range pieces {
		if !ownsPiece(ih, members[0], members[:1], p) {
			t.Fatal("a lone agent does not own every piece")
		}
	}
}

// A token without peer authentication would guard the tracker and the
// catalog while the peer port serves the payload to anyone: refused, with
// the way out in the message. Agents that take no peers may have a token
// alone.
func TestTokenNeedsPeerTLS(t *testing.T) {
	tests := []struct {
		name, extra string
		wantErr     string // "" = accepted
	}{
		{"token, no peer_tls", "token: abc\n", "token: a token needs peer_tls mode required"},
		{"token_file, no peer_tls", "token_file: /t\n", "token_file: a token needs peer_tls"},
		{"token, peer_tls off", "token: abc\npeer_tls: {mode: \"off\"}\n", "needs peer_tls"},
		{"token, download-only", "token: abc\nmode: download-only\n", "needs peer_tls"},
		{"token, peer_tls required", "token: abc\npeer_tls: {mode: required, ca: /c, cert: /p, key: /k}\n", ""},
		{"token, origin-only", "token: abc\nmode: origin-only\n", ""},
		{"no token", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(goodConfig+tt.extra))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatal("accepted")
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestParseConfigActivationAndDeadline: activate, activate_at, deliver_by
// and the deadline section are accepted strictly and validated.
func TestParseConfigActivationAndDeadline(t *testing.T) {
	cfg := strings.Replace(goodConfig, "    channel: stable\n", `    channel: stable
    activate: ["Sun 02:00-04:00"]
    activate_at: 2026-12-24T18:00:00+01:00
    deliver_by: 2026-12-23T00:00:00Z
`, 1) + `rates:
  profiles:
    - {name: slow, down: 1MiB/s}
    - {name: fast, down: 0}
  default: slow
deadline:
  may_start_early: true
  max_profile: fast
`
	c, err := ParseConfig("agent.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Subscriptions[0]
	if len(s.Activate) != 1 || s.Activate[0].String() != "Sun 02:00-04:00" ||
		!s.ActivateAt.Equal(time.Date(2026, 12, 24, 17, 0, 0, 0, time.UTC)) || !s.DeliverBy.Equal(time.Date(2026, 12, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("subscription = %+v", s)
	}
	if !c.Deadline.MayStartEarly || c.Deadline.MaxProfile != "fast" {
		t.Errorf("deadline = %+v", c.Deadline)
	}
	for _, bad := range []struct{ from, to, want string }{
		{"max_profile: fast", "max_profile: turbo", "deadline.max_profile"},
		{`activate: ["Sun 02:00-04:00"]`, `activate: ["Sun 25:00-04:00"]`, "activate"},
		{"may_start_early: true", "may_start_early: sometimes", "agent.yaml:25:"},
		{"deliver_by: 2026-12-23T00:00:00Z", "deliver_by: tomorrow", "deliver_by"},
	} {
		if _, err := ParseConfig("agent.yaml", []byte(strings.Replace(cfg, bad.from, bad.to, 1))); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want it to name %s", bad.to, err, bad.want)
		}
	}
}

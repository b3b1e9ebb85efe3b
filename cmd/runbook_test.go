package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/localswarm"
)

// runbookCommand is one `swarmship …` line of docs/runbook.md.
type runbookCommand struct {
	section string
	line    int
	args    []string // without the leading "swarmship"
}

// runbookCommands returns the swarmship lines of the runbook's code blocks,
// in order, with the section (## heading) each belongs to.
func runbookCommands(t *testing.T, path string) []runbookCommand {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []runbookCommand
	section, inBlock, n := "preamble", false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case !inBlock && strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case inBlock && line != "" && !strings.HasPrefix(line, "#"):
			words := shellWords(t, line)
			if words[0] != "swarmship" {
				t.Errorf("%s:%d: a command that is not swarmship cannot be tested: %q", path, n, line)
				continue
			}
			cmds = append(cmds, runbookCommand{section: section, line: n, args: words[1:]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// shellWords splits a line the way sh would for the simple forms the
// runbook uses: blanks, double quotes, and a trailing # comment.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case !inQuote && !inWord && r == '#':
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// daemons never return; the test checks their command and flags only, by
// running them with --help (cobra parses every flag before it answers).
var runbookDaemons = map[string]bool{"origin": true, "agent": true}

// TestRunbookCommands runs every command of docs/runbook.md, in order,
// against a real directory catalog, its origin and an agent: a renamed
// command or flag, or a step that no longer works, fails here.
func TestRunbookCommands(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // catalog state of the CLI
	cmds := runbookCommands(t, filepath.Join("..", "docs", "runbook.md"))
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found in the runbook", len(cmds))
	}

	ctx := context.Background()
	sw, err := localswarm.New(ctx, t.TempDir(), localswarm.OriginOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	release := payload(t, map[string]string{"app.bin": "version one"})
	if _, err := sw.Publish(ctx, "app", "1.0", []string{release}, "stable"); err != nil {
		t.Fatal(err)
	}
	bad := payload(t, map[string]string{"app.bin": "version two"})
	if _, err := sw.Publish(ctx, "app", "2.0", []string{bad}); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := swarmship(t, "rollout", "start", "app", "2.0", "--channel", "stable", "--waves", "10%,100%",
		"--soak", "1m", "--catalog", sw.CatalogDir, "--keys", sw.KeysDir); code != 0 {
		t.Fatalf("rollout start: %s", errOut)
	}
	ra, err := sw.StartAgent(ctx, "store-7-a", sw.AgentConfig("store-7-a", "store-7", "", agent.Subscription{Name: "app", Channel: "stable"}))
	if err != nil {
		t.Fatal(err)
	}
	// The agent's own status listener is set by Run; serving its handler
	// here gives the test an address without racing that.
	status := httptest.NewServer(ra.Agent.Handler())
	t.Cleanup(status.Close)

	tmp := t.TempDir()
	tokenKeys := filepath.Join(tmp, "tokenkeys")
	if _, errOut, code := swarmship(t, "token", "keygen", "--keys", tokenKeys); code != 0 {
		t.Fatal(errOut)
	}
	opToken, errOut, code := swarmship(t, "token", "issue", "--keys", tokenKeys, "--role", "operator", "--ttl", "1h")
	if code != 0 {
		t.Fatal(errOut)
	}
	revoked := filepath.Join(tmp, "revoked.txt")
	if err := os.WriteFile(revoked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"CATALOG":      sw.CatalogDir,
		"KEYS":         sw.KeysDir,
		"ORIGIN":       sw.OriginURL,
		"OPTOKEN":      strings.TrimSpace(opToken),
		"AGENT":        status.Listener.Addr().String(),
		"RELEASE":      release,
		"TOKENKEYS":    tokenKeys,
		"REVOKED":      revoked,
		"TOKEN_ID":     "leaked-token-id",
		"NEWCATALOG":   filepath.Join(tmp, "newcatalog"),
		"NEWKEYS":      filepath.Join(tmp, "newkeys"),
		"NEWTOKENKEYS": filepath.Join(tmp, "newtokenkeys"),
	}

	// Sections that need the fleet in a given state get it here: the
	// swarm collapse happens during a new rollout (the bad one was aborted).
	setup := map[string]func(){
		// Runs after "A bad release": the channel is back and 2.0 is gone.
		"An origin outage": func() {
			rel := runbookReleases(t, sw.CatalogDir, sw.KeysDir)
			if !slices.Contains(rel["1.0"].Channels, "stable") || !rel["2.0"].Yanked || rel["1.0"].Yanked {
				t.Errorf("after the bad-release steps: %+v", rel)
			}
		},
		"A swarm collapse": func() {
			src := payload(t, map[string]string{"app.bin": "version three"})
			if _, err := sw.Publish(ctx, "app", "3.0", []string{src}); err != nil {
				t.Fatal(err)
			}
			if _, errOut, code := swarmship(t, "rollout", "start", "app", "3.0", "--channel", "stable",
				"--catalog", sw.CatalogDir, "--keys", sw.KeysDir); code != 0 {
				t.Fatalf("rollout start 3.0: %s", errOut)
			}
		},
	}
	section := ""
	for _, c := range cmds {
		if c.section != section {
			section = c.section
			if f := setup[section]; f != nil {
				f()
			}
		}
		args := make([]string, len(c.args))
		for i, a := range c.args {
			args[i] = os.Expand(a, func(k string) string {
				v, ok := vars[k]
				if !ok {
					t.Errorf("line %d: $%s is not a placeholder the runbook defines", c.line, k)
				}
				return v
			})
		}
		if runbookDaemons[args[0]] {
			args = append(args, "--help")
		}
		out, errOut, code := swarmship(t, args...)
		if code != 0 {
			t.Fatalf("%s, line %d: swarmship %s: exit %d\n%s%s", c.section, c.line, strings.Join(c.args, " "), code, out, errOut)
		}
	}

	// The new catalog of "A leaked signing key" holds the good release.
	if rel := runbookReleases(t, vars["NEWCATALOG"], vars["NEWKEYS"]); !slices.Contains(rel["1.0"].Channels, "stable") {
		t.Errorf("new catalog: %+v", rel)
	}
	ids, err := os.ReadFile(revoked)
	if err != nil || !strings.Contains(string(ids), "leaked-token-id") {
		t.Errorf("revocation list %q %v", ids, err)
	}
}

type runbookRelease struct {
	Version  string   `json:"version"`
	Channels []string `json:"channels"`
	Yanked   bool     `json:"yanked"`
}

// runbookReleases reads `catalog ls -o json` by version.
func runbookReleases(t *testing.T, cat, keys string) map[string]runbookRelease {
	t.Helper()
	out, errOut, code := swarmship(t, "catalog", "ls", "--catalog", cat, "--keys", keys, "-o", "json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var list []runbookRelease
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("catalog ls: %v\n%s", err, out)
	}
	m := map[string]runbookRelease{}
	for _, r := range list {
		m[r.Version] = r
	}
	return m
}

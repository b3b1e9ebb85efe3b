package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RequireNPMPackages installs the npm packages pinned by the package.json
// and package-lock.json in srcDir (with `npm ci`, so every version and
// integrity hash is the lock's) and returns the node_modules directory.
// The install is cached under $SWARMSHIP_TOOLS (or the user cache
// directory), keyed by the lock's SHA-256, so only the first run reaches
// the registry. Without node or npm, or when the install fails, the test
// is skipped, or fails in CI.
func RequireNPMPackages(t testing.TB, srcDir string) string {
	t.Helper()
	RequireTool(t, "node")
	npm := RequireTool(t, "npm")
	dir, err := npmInstall(npm, srcDir)
	if err != nil {
		msg := "npm packages of " + srcDir + ": " + err.Error()
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func npmInstall(npm, srcDir string) (string, error) {
	pkg, err := os.ReadFile(filepath.Join(srcDir, "package.json"))
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(srcDir, "package-lock.json"))
	if err != nil {
		return "", err
	}
	base := os.Getenv("SWARMSHIP_TOOLS")
	if base == "" {
		if base, err = os.UserCacheDir(); err != nil {
			return "", err
		}
		base = filepath.Join(base, "swarmship")
	}
	sum := sha256.Sum256(append(append(pkg, 0), lock...))
	dir := filepath.Join(base, "npm-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	// .installed is written after a successful install: an interrupted
	// one is redone.
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	DieWithParent(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	if _, err := os.Stat(modules); err != nil {
		return "", errors.New("npm ci made no node_modules in " + dir)
	}
	if err := os.WriteFile(filepath.Join(dir, ".installed"), nil, 0o644); err != nil {
		return "", err
	}
	return modules, nil
}

//go:build linux

package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/seeder"
)

const testVersion = "1.2.3+test"

// installed is what both packages must put on the machine.
var installed = []string{
	"/usr/bin/swarmship",
	"/usr/lib/systemd/system/swarmship-agent.service",
	"/usr/lib/systemd/system/swarmship-origin.service",
	"/usr/lib/systemd/system/swarmship-sync.service",
	"/usr/lib/systemd/system/swarmship-sync.timer",
	"/usr/lib/systemd/system/swarmship-resign.service",
	"/usr/lib/systemd/system/swarmship-resign.timer",
	"/usr/lib/sysusers.d/swarmship.conf",
	"/usr/share/doc/swarmship/examples/agent.yaml",
	"/usr/share/doc/swarmship/examples/origin.yaml",
	"/usr/share/doc/swarmship/examples/resign.env",
	"/usr/share/swarmship/monitoring/alerts.yml",
	"/usr/share/swarmship/monitoring/grafana-dashboard.json",
}

// run runs a command and returns its stdout; stderr goes into the failure.
func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// scripts/package runs go build and nfpm: stop the whole group, and
	// with the test (Pdeathsig), not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// buildPackages runs scripts/package into a temporary directory and returns
// the .deb and the .rpm. The binary is built without -race: scripts/test.sh
// runs go vet first, which leaves every package of the module compiled in
// the build cache, so the build is mostly a link.
func buildPackages(t *testing.T, ctx context.Context) (deb, rpm string) {
	t.Helper()
	testenv.RequireTool(t, "go")
	bash := testenv.RequireTool(t, "bash")
	out := t.TempDir()
	// GOFLAGS=-race or the like from the environment would go into the
	// packaged binary.
	stdout, _ := run(t, ctx, "..", []string{"GOFLAGS="}, bash, "scripts/package", "--version", testVersion, "--out", out)
	for _, line := range strings.Fields(stdout) {
		switch {
		case strings.HasSuffix(line, ".deb"):
			deb = line
		case strings.HasSuffix(line, ".rpm"):
			rpm = line
		}
	}
	if deb == "" || rpm == "" {
		t.Fatalf("scripts/package printed no .deb and .rpm: %q", stdout)
	}
	return deb, rpm
}

// TestPackages builds the .deb and .rpm with scripts/package, then checks
// them with the distributions' own tools: contents, metadata and
// maintainer scripts; the extracted binary runs and reports the package
// version; systemd-analyze verifies every unit in the extracted tree (with
// the binary the units start present) and rates the services' exposure;
// the example configs pass the strict config decoding. Nothing is
// installed on the host.
func TestPackages(t *testing.T) {
	dpkgDeb := testenv.RequireTool(t, "dpkg-deb")
	rpmTool := testenv.RequireTool(t, "rpm")
	analyze := testenv.RequireTool(t, "systemd-analyze")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	deb, rpm := buildPackages(t, ctx)

	t.Run("deb", func(t *testing.T) {
		fields, _ := run(t, ctx, "", nil, dpkgDeb, "-f", deb, "Package", "Version", "Architecture", "Depends")
		for _, want := range []string{"Package: swarmship", "Version: " + testVersion, "Depends: libc6, libstdc++6, libgcc-s1"} {
			if !strings.Contains(fields, want) {
				t.Errorf("dpkg-deb -f: no %q in\n%s", want, fields)
			}
		}
		listing, _ := run(t, ctx, "", nil, dpkgDeb, "-c", deb)
		var files []string
		for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 || strings.HasPrefix(f[0], "d") {
				continue
			}
			files = append(files, strings.TrimPrefix(f[len(f)-1], "."))
			if f[len(f)-1] == "./usr/bin/swarmship" && f[0] != "-rwxr-xr-x" {
				t.Errorf("/usr/bin/swarmship has mode %s", f[0])
			}
		}
		for _, want := range installed {
			if !slices.Contains(files, want) {
				t.Errorf("the .deb lacks %s; it has %v", want, files)
			}
		}

		control := t.TempDir()
		run(t, ctx, "", nil, dpkgDeb, "-e", deb, control)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			p := filepath.Join(control, s)
			fi, err := os.Stat(p)
			if err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("maintainer script %s: %v (mode %v)", s, err, fi)
				continue
			}
			run(t, ctx, "", nil, "sh", "-n", p)
		}
		if b, _ := os.ReadFile(filepath.Join(control, "postinst")); !bytes.Contains(b, []byte("systemd-sysusers")) || !bytes.Contains(b, []byte("useradd")) {
			t.Error("postinst does not create the swarmship user")
		}

		root := t.TempDir()
		run(t, ctx, "", nil, dpkgDeb, "-x", deb, root)
		v, _ := run(t, ctx, "", nil, filepath.Join(root, "usr", "bin", "swarmship"), "version")
		if !strings.Contains(v, testVersion) {
			t.Errorf("swarmship version printed %q, want %s", v, testVersion)
		}
		verifyUnits(t, ctx, analyze, root)

		if _, err := agent.LoadConfig(filepath.Join(root, "usr/share/doc/swarmship/examples/agent.yaml")); err != nil {
			t.Errorf("example agent.yaml: %v", err)
		}
		if _, err := seeder.LoadConfig(filepath.Join(root, "usr/share/doc/swarmship/examples/origin.yaml"), nil); err != nil {
			t.Errorf("example origin.yaml: %v", err)
		}
	})

	t.Run("dpkg-root", func(t *testing.T) { installIntoRoot(t, ctx, deb) })

	t.Run("rpm", func(t *testing.T) {
		run(t, ctx, "", nil, rpmTool, "--checksig", "--nosignature", rpm)
		meta, _ := run(t, ctx, "", nil, rpmTool, "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE}\n", rpm)
		if got, want := strings.TrimSpace(meta), "swarmship "+testVersion+" 1"; got != want {
			t.Errorf("rpm name, version, release: %q, want %q", got, want)
		}
		list, _ := run(t, ctx, "", nil, rpmTool, "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", rpm)
		modes := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if mode, name, ok := strings.Cut(line, " "); ok {
				modes[name] = mode
			}
		}
		for _, want := range installed {
			if modes[want] == "" {
				t.Errorf("the .rpm lacks %s", want)
			}
		}
		if m := modes["/usr/bin/swarmship"]; m != "-rwxr-xr-x" {
			t.Errorf("/usr/bin/swarmship has mode %s in the .rpm", m)
		}
		reqs, _ := run(t, ctx, "", nil, rpmTool, "-qpR", rpm)
		for _, want := range []string{"glibc", "libstdc++"} {
			if !slices.Contains(strings.Fields(reqs), want) {
				t.Errorf("rpm requires %q, want %s among them", reqs, want)
			}
		}
		scripts, _ := run(t, ctx, "", nil, rpmTool, "-qp", "--scripts", rpm)
		for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "systemd-sysusers"} {
			if !strings.Contains(scripts, want) {
				t.Errorf("rpm scripts lack %q", want)
			}
		}
	})
}

// verifyUnits runs systemd-analyze verify on every unit of the extracted
// package. --root resolves the units' dependencies and the ExecStart binary
// inside root, so the host's targets, slices and kill are copied in (the
// package's own binary is already there). Unknown keys or bad values are
// only warnings to systemd-analyze: any output fails the test.
func verifyUnits(t *testing.T, ctx context.Context, analyze, root string) {
	t.Helper()
	unitDir := filepath.Join(root, "usr", "lib", "systemd", "system")
	units, err := filepath.Glob(filepath.Join(unitDir, "swarmship-*"))
	if err != nil || len(units) != 6 {
		t.Fatalf("units in the package: %v %v", units, err)
	}
	var host []string
	for _, pat := range []string{"/usr/lib/systemd/system/*.target", "/usr/lib/systemd/system/*.slice", "/lib/systemd/system/*.target", "/lib/systemd/system/*.slice"} {
		m, _ := filepath.Glob(pat)
		host = append(host, m...)
	}
	if len(host) == 0 {
		t.Fatal("no systemd targets on this host to verify against")
	}
	for _, src := range host {
		dst := filepath.Join(unitDir, filepath.Base(src))
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		copyFile(t, src, dst, 0o644)
	}
	kill, err := exec.LookPath("kill")
	if err != nil {
		kill = "/usr/bin/kill"
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, kill, filepath.Join(root, "bin", "kill"), 0o755)

	for _, u := range units {
		rel := strings.TrimPrefix(u, root+string(filepath.Separator))
		stdout, stderr := run(t, ctx, root, nil, analyze, "verify", "--root="+root, rel)
		if out := strings.TrimSpace(stdout + stderr); out != "" {
			t.Errorf("systemd-analyze verify %s:\n%s", filepath.Base(u), out)
		}
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		// Exposure 0 (locked down) to 10 (unprotected); the units score
		// 1.6-1.7 with systemd 252. The threshold is in tenths.
		out, _ := run(t, ctx, root, nil, analyze, "security", "--offline=true", "--threshold=25", "--root="+root, rel)
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "Overall exposure level") {
				t.Logf("%s", strings.TrimPrefix(strings.TrimSpace(line), "→ "))
			}
		}
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// installIntoRoot installs the .deb with `dpkg --root` into an empty
// temporary root, reinstalls it (the upgrade path) and removes it. dpkg
// runs the maintainer scripts on the host with DPKG_ROOT set
// (--force-script-chrootless: the root has no shell to chroot into), and
// the scripts put every path under it; the test refuses a postinst that
// does not, so that nothing lands on the host.
func installIntoRoot(t *testing.T, ctx context.Context, deb string) {
	dpkg := testenv.RequireTool(t, "dpkg")
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			t.Fatal("dpkg --root needs root")
		}
		t.Skip("dpkg --root needs root")
	}
	control := t.TempDir()
	run(t, ctx, "", nil, "dpkg-deb", "-e", deb, control)
	if b, _ := os.ReadFile(filepath.Join(control, "postinst")); !bytes.Contains(b, []byte(`root="${DPKG_ROOT:-}"`)) {
		t.Fatal("postinst does not honour DPKG_ROOT: not running it")
	}
	root := t.TempDir()
	for _, d := range []string{"etc", "var/log", "var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The C runtimes the package depends on are not in the empty root.
	dpkgIn := func(args ...string) string {
		base := []string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=" + filepath.Join(root, "var/log/dpkg.log")}
		out, _ := run(t, ctx, "", nil, dpkg, append(base, args...)...)
		return out
	}
	status := func() string {
		out, _ := run(t, ctx, "", nil, dpkg, "--root="+root, "-s", "swarmship")
		return out
	}

	dpkgIn("-i", deb)
	if st := status(); !strings.Contains(st, "Status: install ok installed") || !strings.Contains(st, "Version: "+testVersion) {
		t.Fatalf("after dpkg -i:\n%s", st)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	var uid, gid string
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "swarmship" {
			uid, gid = f[2], f[3]
			if f[5] != "/var/lib/swarmship" || !strings.HasSuffix(f[6], "nologin") {
				t.Errorf("swarmship user: %s", line)
			}
		}
	}
	if uid == "" {
		t.Fatalf("postinst created no swarmship user:\n%s", passwd)
	}
	for _, d := range []struct{ path, uid, gid string }{
		{"etc/swarmship", "0", gid},
		{"var/lib/swarmship", uid, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("postinst did not create /%s: %v", d.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d %v", st.Uid, st.Gid, fi.Mode().Perm()); got != d.uid+":"+d.gid+" -rwxr-x---" {
			t.Errorf("/%s: %s, want %s:%s -rwxr-x---", d.path, got, d.uid, d.gid)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/bin/swarmship")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("/usr/bin/swarmship after install: %v", err)
	}

	// Again, as an upgrade does: the user and directories are kept.
	dpkgIn("-i", deb)
	if again, _ := os.ReadFile(filepath.Join(root, "etc", "passwd")); !bytes.Equal(again, passwd) {
		t.Errorf("reinstall changed /etc/passwd:\n%s", again)
	}

	dpkgIn("-r", "swarmship")
	if st := status(); !strings.Contains(st, "Status: deinstall ok") {
		t.Errorf("after dpkg -r:\n%s", st)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/swarmship")); err == nil {
		t.Error("dpkg -r left /usr/bin/swarmship")
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/swarmship")); err != nil {
		t.Errorf("dpkg -r removed the data directory: %v", err)
	}
}

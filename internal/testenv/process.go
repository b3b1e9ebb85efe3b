package testenv

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// Process is a program a test started in the background (a BitTorrent
// daemon, say). It dies with the test binary and is killed by its own PID
// when the test ends; its output is kept (the last 64 KiB) and shown if the
// test failed.
type Process struct {
	Name string
	Cmd  *exec.Cmd

	exited chan struct{}
	output *tailBuffer
	err    error // Wait's result, set before exited is closed
}

// StartProcess starts bin with args in dir ("" for the test's working
// directory). The test fails if the program cannot be started.
func StartProcess(t testing.TB, dir, bin string, args ...string) *Process {
	t.Helper()
	out := &tailBuffer{max: 64 << 10}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{Name: bin, Cmd: cmd, exited: make(chan struct{}), output: out}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", bin, p.Output())
		}
	})
	return p
}

// Exited is closed once the program has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait waits up to timeout for the program to exit by itself and returns
// its exit error; on timeout it kills it and says so.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.Stop()
		return fmt.Errorf("%s still running after %v; killed", p.Name, timeout)
	}
}

// Stop kills the program by its PID, if it still runs, and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.Cmd.Process.Kill()
	<-p.exited
}

// Output is the tail of what the program wrote to stdout and stderr.
func (p *Process) Output() string { return p.output.String() }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago; a
// program given it may still find it taken, so callers retry.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}

// DieWithParent makes cmd's process die with the test binary (on Linux),
// for tests that start a program themselves rather than with StartProcess.
func DieWithParent(cmd *exec.Cmd) { setProcAttr(cmd) }

package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Redis is a redis-server on a loopback port, without persistence, that
// a test can kill and restart (empty) to play a Redis that lost its data.
type Redis struct {
	Addr string // 127.0.0.1:PORT
	URL  string // redis://127.0.0.1:PORT/0

	bin    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output *tailBuffer
}

// redisReadyTimeout bounds the wait for a new redis-server to answer PING.
const redisReadyTimeout = 15 * time.Second

// StartRedis starts redis-server (found as by RequireTool, so the test
// skips outside CI when it is missing) on a free loopback port and waits
// until it answers. It is killed when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := RequireTool(t, "redis-server")
	var lastErr error
	for range 3 { // a free port may be taken before redis-server binds it
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r := &Redis{Addr: addr, URL: "redis://" + addr + "/0", bin: bin}
		if lastErr = r.start(); lastErr == nil {
			t.Cleanup(func() {
				r.Kill()
				if t.Failed() {
					t.Logf("redis-server output:\n%s", r.output)
				}
			})
			return r
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func (r *Redis) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	out := &tailBuffer{max: 64 << 10}
	cmd := exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.output = cmd, exited, out
	r.mu.Unlock()
	deadline := time.Now().Add(redisReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited early: %v\n%s", cmd.ProcessState, out)
		default:
		}
		if lastErr = r.Ping(); lastErr == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Kill()
	return fmt.Errorf("redis-server at %s not ready after %v: %v", r.Addr, redisReadyTimeout, lastErr)
}

// Ping sends PING over a fresh connection and expects PONG.
func (r *Redis) Ping() error {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Kill()
	<-exited
}

// Restart kills the server and starts an empty one on the same port, as
// a Redis without persistence comes back after a crash.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Kill()
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restart redis-server on %s: %v", r.Addr, err)
}

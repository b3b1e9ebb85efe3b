package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersityGW is a running versitygw S3 gateway over a temporary directory,
// listening on a loopback port. Buckets are directories of Dir.
type VersityGW struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Dir       string

	cmd     *exec.Cmd
	exited  chan struct{}
	output  *tailBuffer
	buckets atomic.Int64
}

// versityReadyTimeout bounds the wait for a new gateway to answer /health.
const versityReadyTimeout = 15 * time.Second

// StartVersityGW starts versitygw (found as by RequireTool, so the test
// skips outside CI when it is missing) on a free loopback port over a new
// temporary directory, and waits until it is healthy. The gateway is
// killed when the test ends.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	bin := RequireTool(t, "versitygw")
	dir := t.TempDir()
	var key [12]byte
	rand.Read(key[:])
	access, secret := "swarmship-test", hex.EncodeToString(key[:])

	var lastErr error
	for range 3 { // a free port may be taken before versitygw binds it
		gw, err := startVersityGW(bin, dir, access, secret)
		if err == nil {
			t.Cleanup(func() {
				gw.stop()
				if t.Failed() {
					t.Logf("versitygw output:\n%s", gw.output)
				}
			})
			return gw
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return nil
}

// LaunchVersityGW starts the versitygw binary bin over dir with fresh
// credentials, for programs that are not tests (benchmarks); the caller
// calls Stop.
func LaunchVersityGW(bin, dir string) (*VersityGW, error) {
	var key [12]byte
	rand.Read(key[:])
	var lastErr error
	for range 3 { // a free port may be taken before versitygw binds it
		gw, err := startVersityGW(bin, dir, "swarmship-bench", hex.EncodeToString(key[:]))
		if err == nil {
			return gw, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Stop kills a gateway from LaunchVersityGW and waits for it to exit.
func (v *VersityGW) Stop() { v.stop() }

func startVersityGW(bin, dir, access, secret string) (*VersityGW, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &tailBuffer{max: 64 << 10}
	cmd := exec.Command(bin,
		"--access", access, "--secret", secret,
		"--port", addr, "--health", "/health", "--quiet",
		"posix", dir)
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	gw := &VersityGW{
		Endpoint:  "http://" + addr,
		AccessKey: access,
		SecretKey: secret,
		Dir:       dir,
		cmd:       cmd,
		exited:    make(chan struct{}),
		output:    out,
	}
	go func() {
		cmd.Wait()
		close(gw.exited)
	}()
	if err := gw.waitHealthy(); err != nil {
		gw.stop()
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return gw, nil
}

func (v *VersityGW) waitHealthy() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(versityReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-v.exited:
			return fmt.Errorf("versitygw exited early: %v", v.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(v.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check: %s", resp.Status)
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("versitygw at %s not healthy after %v: %v", v.Endpoint, versityReadyTimeout, lastErr)
}

// stop kills the gateway by its process ID and waits for it to exit.
func (v *VersityGW) stop() {
	select {
	case <-v.exited:
		return
	default:
	}
	v.cmd.Process.Kill()
	<-v.exited
}

// Client returns a minio-go client for the gateway with its credentials
// (path-style addressing).
func (v *VersityGW) Client(t testing.TB) *minio.Client {
	t.Helper()
	u, err := url.Parse(v.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(v.AccessKey, v.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBucket creates bucket name, failing the test on error.
func (v *VersityGW) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket %s on %s: %v", name, v.Endpoint, err)
	}
}

// NewBucket creates a bucket with a fresh valid name derived from the test
// name and returns the name.
func (v *VersityGW) NewBucket(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := fmt.Sprintf("%s-%d", strings.Trim(b.String(), "-"), v.buckets.Add(1))
	name = strings.TrimLeft(name, "-")
	if len(name) < 3 {
		name = "bucket-" + name
	}
	v.MakeBucket(t, name)
	return name
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it; it is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

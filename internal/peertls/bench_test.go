//go:build unix

package peertls_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
)

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkPeertlsThroughput moves one payload from a seeding client to a
// leeching client on loopback, over plain TCP and over mutual TLS, in the
// same run (alternating, so that load from elsewhere hits both alike), and
// reports both rates, the median per-run ratio and the CPU time per GiB
// (less sensitive to a busy machine than wall time):
//
//	go test -run '^$' -bench PeertlsThroughput -benchtime 3x ./internal/peertls/
//
// PEERTLS_BENCH_MIB sets the payload (default 256), PEERTLS_BENCH_PIECE_KIB
// the piece length (default 4096).
func BenchmarkPeertlsThroughput(b *testing.B) {
	size := envInt("PEERTLS_BENCH_MIB", 256) << 20
	pieceLen := envInt("PEERTLS_BENCH_PIECE_KIB", 4096) << 10
	ca := pki(b,
		peertlstest.CertSpec{Name: "seeder", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "leecher", Identity: id("acme", "s2")},
	)
	data := b.TempDir()
	mi := makeTorrent(b, data, size, pieceLen)
	modes := []struct {
		name            string
		seeder, leecher *tls.Config
		elapsed, cpu    time.Duration
	}{
		{name: "plain"},
		{name: "tls", seeder: load(b, ca, "seeder"), leecher: load(b, ca, "leecher")},
	}
	var ratios []float64 // per iteration: TLS rate / plain rate
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var took [2]time.Duration
		for k := range modes {
			mi0 := (i + k) % len(modes) // alternate which goes first
			m := &modes[mi0]
			dir, err := os.MkdirTemp(b.TempDir(), "run")
			if err != nil {
				b.Fatal(err)
			}
			seeder := startClient(b, dir, m.seeder)
			seed(b, seeder, data, mi)
			leecher := startClient(b, dir, m.leecher)
			lt := leech(b, leecher, filepath.Join(dir, "leech"), mi)
			cpu0 := processCPU()
			start := time.Now()
			waitComplete(b, lt, seeder.LocalPort(), 10*time.Minute)
			took[mi0] = time.Since(start)
			m.elapsed += took[mi0]
			m.cpu += processCPU() - cpu0
			leecher.Close()
			seeder.Close()
			os.RemoveAll(dir) // the next run gets the disk space back
		}
		ratios = append(ratios, took[0].Seconds()/took[1].Seconds())
		b.Logf("run %d: plain %.1f MB/s, tls %.1f MB/s", i+1, float64(size)/took[0].Seconds()/1e6, float64(size)/took[1].Seconds()/1e6)
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	cpuPerGiB := func(d time.Duration) float64 { return d.Seconds() / (float64(size) * float64(b.N) / (1 << 30)) }
	slices.Sort(ratios)
	b.ReportMetric(mbps(modes[0].elapsed), "plain-MB/s")
	b.ReportMetric(mbps(modes[1].elapsed), "tls-MB/s")
	b.ReportMetric(ratios[len(ratios)/2], "tls/plain(median)")
	b.ReportMetric(cpuPerGiB(modes[0].cpu), "plain-cpu-s/GiB")
	b.ReportMetric(cpuPerGiB(modes[1].cpu), "tls-cpu-s/GiB")
	b.ReportMetric(0, "ns/op")
}

// processCPU is the user+system CPU time the process has used (both
// clients run in it).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPeertlsRawStream is the transport alone: 256 MiB (or
// PEERTLS_BENCH_MIB) through one loopback connection, plain TCP and TLS
// through the peertls Listener and Dialer, alternating in one run.
func BenchmarkPeertlsRawStream(b *testing.B) {
	size := envInt("PEERTLS_BENCH_MIB", 256) << 20
	ca := pki(b,
		peertlstest.CertSpec{Name: "server", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "client", Identity: id("acme", "s2")},
	)
	serverTLS, clientTLS := load(b, ca, "server"), load(b, ca, "client")
	stream := func(useTLS bool) time.Duration {
		var ln net.Listener
		var err error
		if useTLS {
			ln, err = peertls.Listen("127.0.0.1:0", serverTLS)
		} else {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			for left := size; left > 0; left -= int64(len(buf)) {
				if _, err := c.Write(buf[:min(left, int64(len(buf)))]); err != nil {
					return
				}
			}
		}()
		var c net.Conn
		if useTLS {
			c, err = peertls.Dialer{TLS: clientTLS}.Dial(context.Background(), ln.Addr().String())
		} else {
			c, err = net.Dial("tcp", ln.Addr().String())
		}
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if n, err := io.Copy(io.Discard, c); err != nil || n != size {
			b.Fatalf("read %d of %d: %v", n, size, err)
		}
		return time.Since(start)
	}
	var plain, withTLS time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			plain += stream(false)
			withTLS += stream(true)
		} else {
			withTLS += stream(true)
			plain += stream(false)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(plain), "plain-MB/s")
	b.ReportMetric(mbps(withTLS), "tls-MB/s")
	b.ReportMetric(mbps(withTLS)/mbps(plain), "tls/plain")
	b.ReportMetric(0, "ns/op")
}

package btclient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

func TestParseDSCP(t *testing.T) {
	for in, want := range map[string]int{
		"": -1, "CS0": 0, "cs1": 8, "CS7": 56, "AF11": 10, "af43": 38, "EF": 46, "LE": 1, "VA": 44,
		"0": 0, "63": 63, " 8 ": 8,
	} {
		got, err := ParseDSCP(in)
		if err != nil || got != want {
			t.Errorf("ParseDSCP(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"64", "-1", "AF14", "AF51", "CS8", "0x20", "1.5", "scavenger", "ef1"} {
		if got, err := ParseDSCP(in); err == nil {
			t.Errorf("ParseDSCP(%q) = %d, want an error", in, got)
		}
	}
}

func sockDSCP(t *testing.T, sc syscall.Conn) int {
	t.Helper()
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := -2
	if err := raw.Control(func(fd uintptr) { got = socketDSCP(fd) }); err != nil {
		t.Fatal(err)
	}
	return got
}

// The listener, the sockets it accepts, dialled sockets and the uTP
// socket all carry the mark (read back from the sockets).
func TestDSCPMarksPeerSockets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("DSCP marking is Linux's")
	}
	const d = 10 // AF11
	s := peerShape{dscp: d}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold); ln.Close() })
	if err := s.markListener(ln); err != nil {
		t.Fatal(err)
	}
	l := &tcpListener{Listener: s.listener(ln), stall: time.Minute, hold: hold}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialed, err := tcpDialer{stall: time.Minute, shape: s}.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	var in net.Conn
	select {
	case in = <-accepted:
		t.Cleanup(func() { in.Close() })
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	for name, sc := range map[string]syscall.Conn{
		"listener": ln.(*net.TCPListener),
		"dialled":  dialed.(*stallConn).Conn.(*net.TCPConn),
		"accepted": in.(*stallConn).Conn.(*net.TCPConn),
	} {
		if got := sockDSCP(t, sc); got != d {
			t.Errorf("%s: DSCP %d, want %d", name, got, d)
		}
	}
	u, err := utp.NewSocket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if err := s.markUTP(u); err != nil {
		t.Fatalf("uTP socket: %v", err)
	}
	sc, err := utpSocketConn(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := sockDSCP(t, sc); got != d {
		t.Errorf("uTP socket: DSCP %d, want %d", got, d)
	}
}

// tosLine matches tcpdump -v's IPv4 header line and the addresses after it.
var tosLine = regexp.MustCompile(`IP \(tos 0x([0-9a-f]+),.*proto (TCP|UDP) .*\)\s*\n\s*(\S+) > (\S+):`)

// A capture on the wire (tcpdump in a network namespace of the test's own)
// shows the configured DSCP on every peer packet, both directions, over
// TCP and uTP, with peer TLS off and on, while one client downloads a
// torrent from the other. Root only; skipped outside CI without it.
func TestDSCPOnTheWire(t *testing.T) {
	if !testenv.InPrivateNetwork(t, 3*time.Minute) {
		return
	}
	tcpdump := testenv.RequireTool(t, "tcpdump")
	pki := t.TempDir()
	if err := peertlstest.GeneratePKI(pki,
		peertlstest.CertSpec{Name: "a", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}},
		peertlstest.CertSpec{Name: "b", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}}); err != nil {
		t.Fatal(err)
	}
	info, data := buildInfo(t, "dscp", 64<<10, []testFile{{"a.bin", 2 << 20}})
	seedDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(seedDir, "dscp"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seedDir, "dscp", "a.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)
	const dscp = 10 // AF11: tos 0x28
	nft := testenv.RequireTool(t, "nft")
	for _, c := range []struct {
		tls   bool
		proto string
	}{{false, "TCP"}, {false, "UDP"}, {true, "TCP"}, {true, "UDP"}} {
		withTLS := c.tls
		t.Run(fmt.Sprintf("tls=%v/%s", c.tls, c.proto), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "cap.txt")
			capture := startCapture(t, tcpdump, out, strings.ToLower(c.proto))
			newClient := func(name string) *torrent.Client {
				d := dscp
				cfg := Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir(), UTP: true, DSCP: &d}
				if withTLS {
					tc, _, err := peertls.Load(peertlstest.Config(pki, name))
					if err != nil {
						t.Fatal(err)
					}
					cfg.TLS = tc
				}
				cl, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cl.Close() })
				return cl
			}
			seeder := newClient("a")
			st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
				Storage: NewFileStorage(seedDir, TrustedCompletion{})})
			<-st.GotInfo()
			if c.proto == "UDP" {
				// uTP: TCP to the seeder is refused, so the dial that
				// succeeds is uTP's.
				rules := fmt.Sprintf("table inet dscptest {\n chain inbound {\n  type filter hook input priority 0; policy accept;\n  tcp dport %d reject with tcp reset\n }\n}\n", seeder.LocalPort())
				cmd := exec.Command(nft, "-f", "-")
				cmd.Stdin = strings.NewReader(rules)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("nft: %v: %s", err, out)
				}
				t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", "dscptest").Run() })
			}
			leecher := newClient("b")
			lt, _ := leecher.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
				Storage: NewFileStorage(t.TempDir(), storage.NewMapPieceCompletion())})
			<-lt.GotInfo()
			lt.DownloadAll()
			addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: seeder.LocalPort()}
			lt.AddPeers([]torrent.PeerInfo{{Addr: addr, Trusted: true}})
			select {
			case <-lt.Complete().On():
			case <-time.After(60 * time.Second):
				t.Fatalf("download incomplete: %d bytes missing", lt.BytesMissing())
			}
			seeder.Close()
			leecher.Close()
			text := capture()
			port := strconv.Itoa(seeder.LocalPort())
			counts := map[string]int{}
			for _, m := range tosLine.FindAllStringSubmatch(text, -1) {
				tos, _ := strconv.ParseUint(m[1], 16, 8)
				dir := "to seeder"
				if strings.HasSuffix(m[3], "."+port) {
					dir = "from seeder"
				}
				counts[m[2]+" "+dir]++
				if int(tos>>2) != dscp {
					t.Errorf("packet without the mark (tos 0x%s): %s %s > %s", m[1], m[2], m[3], m[4])
				}
			}
			t.Logf("packets by protocol and direction: %v", counts)
			// 2 MiB from the seeder in packets of at most 64 KiB (lo's MTU), and the requests and acknowledgements back.
			for _, k := range []string{c.proto + " to seeder", c.proto + " from seeder"} {
				if counts[k] < 20 {
					t.Errorf("%d %s packets captured: the transfer was not", counts[k], k)
				}
			}
		})
	}
}

// startCapture runs tcpdump on lo writing -v text to out until the
// returned function stops it and returns the text.
func startCapture(t *testing.T, tcpdump, out, proto string) func() string {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tcpdump, "-i", "lo", "-n", "-v", "-l", "-U", "ip and "+proto)
	cmd.Stdout = f
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	testenv.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var errText strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			fmt.Fprintln(&errText, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			f.Close()
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("tcpdump did not start: %s", errText.String())
	}
	return func() string {
		time.Sleep(200 * time.Millisecond) // let tcpdump write what it has seen
		stop()
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

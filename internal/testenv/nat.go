package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// NATNet is a small internet in network namespaces: a WAN namespace (the
// public side, where an origin runs) and sites, each a LAN namespace
// behind its own router namespace that masquerades (nftables) and, like
// a home or branch router, lets nothing in that the site did not start.
// Processes are run in a namespace with Command. Everything is deleted in
// t.Cleanup, also when the test fails.
//
// Addresses: the WAN is 198.18.0.0/24 (RFC 2544 test range) with the WAN
// namespace at WANAddr and site i's router at 198.18.0.(10+i); site i's
// LAN is 10.77.i.0/24 with its router at .1 and the site namespace at .2.
type NATNet struct {
	WAN   string // namespace of the public side
	Sites []NATSite
}

// NATSite is one site behind a masquerading router.
type NATSite struct {
	NS     string // the site's LAN namespace (its hosts run here)
	Router string // the router's namespace
	// LANAddr is the site namespace's address; PublicAddr the router's WAN
	// address, which the outside sees as the source of the site's traffic.
	LANAddr, PublicAddr string
}

// WANAddr is the WAN namespace's address.
const WANAddr = "198.18.0.1"

// Router interface names: WANIf faces the WAN, LANIf the site.
const (
	WANIf = "wan"
	LANIf = "lan"
)

// routerRules masquerades what leaves through the WAN interface and
// drops what comes in unasked, forwarded or addressed to the router: the
// drop in the input hook matters for hole punching, as it keeps the
// kernel from recording an early inbound packet as a connection of its
// own, which would make masquerade pick another source port for the
// site's own packets to that peer.
const routerRules = `table ip nat {
 chain post {
  type nat hook postrouting priority 100; policy accept;
  oifname "` + WANIf + `" masquerade
 }
}
table ip filter {
 chain forward_filter {
  type filter hook forward priority 0; policy drop;
  ct state established,related accept
  iifname "` + LANIf + `" accept
 }
 chain input_filter {
  type filter hook input priority 0; policy drop;
  ct state established,related accept
  iifname "lo" accept
  iifname "` + LANIf + `" accept
 }
}
`

// NewNATNet builds a WAN and n sites behind NAT. It needs Linux, root,
// ip(8) and nft(8): missing, the test skips, or fails in CI.
func NewNATNet(t testing.TB, n int) *NATNet {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		if InCI() {
			t.Fatal("NAT namespaces need Linux and root")
		}
		t.Skip("NAT namespaces need Linux and root")
	}
	ip := RequireTool(t, "ip")
	nft := RequireTool(t, "nft")
	if n < 1 || n > 200 {
		t.Fatalf("NewNATNet: %d sites", n)
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	pfx := "ssn" + hex.EncodeToString(b[:])
	net := &NATNet{WAN: pfx + "-wan"}
	var made []string
	t.Cleanup(func() {
		for _, ns := range made {
			if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	addNS := func(ns string) {
		t.Helper()
		run("netns", "add", ns)
		made = append(made, ns)
		run("-n", ns, "link", "set", "lo", "up")
	}
	addNS(net.WAN)
	run("-n", net.WAN, "link", "add", "br0", "type", "bridge")
	run("-n", net.WAN, "addr", "add", WANAddr+"/24", "dev", "br0")
	run("-n", net.WAN, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		s := NATSite{
			NS:         fmt.Sprintf("%s-s%d", pfx, i),
			Router:     fmt.Sprintf("%s-r%d", pfx, i),
			LANAddr:    fmt.Sprintf("10.77.%d.2", i),
			PublicAddr: fmt.Sprintf("198.18.0.%d", 10+i),
		}
		addNS(s.Router)
		addNS(s.NS)
		// WAN link: the router's end is WANIf, the other joins br0.
		port := fmt.Sprintf("w%d", i)
		run("-n", s.Router, "link", "add", WANIf, "type", "veth", "peer", "name", port, "netns", net.WAN)
		run("-n", net.WAN, "link", "set", port, "master", "br0")
		run("-n", net.WAN, "link", "set", port, "up")
		run("-n", s.Router, "addr", "add", s.PublicAddr+"/24", "dev", WANIf)
		run("-n", s.Router, "link", "set", WANIf, "up")
		// LAN link.
		run("-n", s.Router, "link", "add", LANIf, "type", "veth", "peer", "name", "eth0", "netns", s.NS)
		run("-n", s.Router, "addr", "add", fmt.Sprintf("10.77.%d.1/24", i), "dev", LANIf)
		run("-n", s.Router, "link", "set", LANIf, "up")
		run("-n", s.NS, "addr", "add", s.LANAddr+"/24", "dev", "eth0")
		run("-n", s.NS, "link", "set", "eth0", "up")
		run("-n", s.NS, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i))
		run("netns", "exec", s.Router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		cmd := exec.Command(ip, "netns", "exec", s.Router, nft, "-f", "-")
		cmd.Stdin = strings.NewReader(routerRules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft in %s: %v: %s", s.Router, err, out)
		}
		net.Sites = append(net.Sites, s)
	}
	return net
}

// Command runs name with args in namespace ns (ip netns exec).
func (n *NATNet) Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// WANIngress is how many bytes the site's router received from the WAN:
// everything that entered the site from outside, headers included.
func (s NATSite) WANIngress() (int64, error) {
	out, err := exec.Command("ip", "-n", s.Router, "-j", "-s", "link", "show", "dev", WANIf).Output()
	if err != nil {
		return 0, fmt.Errorf("ip link stats of %s in %s: %w", WANIf, s.Router, err)
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip link stats of %s in %s: %q: %v", WANIf, s.Router, out, err)
	}
	return links[0].Stats64.RX.Bytes, nil
}

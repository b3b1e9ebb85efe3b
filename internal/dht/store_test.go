package dht

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
)

func TestPeerStoreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPeerStore(func() time.Time { return now })
	target := [20]byte{1}
	for i := 0; i < 3*MaxPeersPerTarget; i++ {
		p.AddPeer(target, krpc.NodeAddr{IP: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 7000})
	}
	if n := p.count(); n != MaxPeersPerTarget {
		t.Fatalf("%d peers for one target", n)
	}
	got := p.GetPeers(target)
	if len(got) != peersPerAnswer {
		t.Fatalf("answer of %d peers", len(got))
	}
	// Copies: changing an answer changes nothing stored.
	got[0].IP[0] = 99
	for _, a := range p.GetPeers(target) {
		if a.IP.To4()[0] != 10 || a.Port != 7000 {
			t.Fatalf("stored peer changed to %v", a)
		}
	}
	for _, bad := range []krpc.NodeAddr{{IP: net.IPv4(10, 0, 0, 1), Port: 0}, {IP: net.IPv4zero, Port: 1}, {IP: []byte{1, 2}, Port: 1}, {Port: 1}} {
		p.AddPeer([20]byte{2}, bad)
	}
	if len(p.GetPeers([20]byte{2})) != 0 {
		t.Fatal("a bad address was stored")
	}
	for i := 0; p.count() < MaxStoredPeers; i++ {
		p.AddPeer([20]byte{3, byte(i >> 8), byte(i)}, krpc.NodeAddr{IP: net.IPv4(10, 1, 0, 1), Port: 7000})
	}
	p.AddPeer([20]byte{4}, krpc.NodeAddr{IP: net.IPv4(10, 1, 0, 1), Port: 7000})
	if p.count() != MaxStoredPeers || len(p.GetPeers([20]byte{4})) != 0 {
		t.Fatalf("store grew past its bound: %d", p.count())
	}
	now = now.Add(storedPeerTTL + time.Second)
	if len(p.GetPeers(target)) != 0 {
		t.Fatal("expired peers answered")
	}
	p.AddPeer([20]byte{4}, krpc.NodeAddr{IP: net.IPv4(10, 1, 0, 1), Port: 7000})
	if p.count() != 1 {
		t.Fatalf("expired peers not dropped when full: %d", p.count())
	}
}

func TestNodesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dht-nodes.json")
	if nf, err := readNodes(path); err != nil || len(nf.Nodes) != 0 {
		t.Fatalf("missing file: %+v %v", nf, err)
	}
	id := strings.Repeat("ab", 20)
	want := nodesFile{Port: 7777, Nodes: []savedNode{{ID: id, Addr: "127.0.0.1:9"}, {ID: id, Addr: "[::1]:10"}}}
	if err := writeNodes(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readNodes(path)
	if err != nil || got.Port != 7777 || len(got.Nodes) != 2 || got.Nodes[1].Addr != "[::1]:10" {
		t.Fatalf("read back %+v %v", got, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	// Bad entries are skipped, the rest kept.
	os.WriteFile(path, []byte(`{"nodes":[{"id":"zz","addr":"127.0.0.1:9"},{"id":"`+id+`","addr":"127.0.0.1:0"},{"id":"`+id+`","addr":"0.0.0.0:5"},{"id":"`+id+`","addr":"127.0.0.1:9"}]}`), 0o600)
	if got, err := readNodes(path); err != nil || len(got.Nodes) != 1 {
		t.Fatalf("bad entries: %+v %v", got, err)
	}
	many := nodesFile{}
	for i := 0; i < 2*MaxSavedNodes; i++ {
		many.Nodes = append(many.Nodes, savedNode{ID: id, Addr: "127.0.0.1:9"})
	}
	writeNodes(path, many)
	if got, err := readNodes(path); err != nil || len(got.Nodes) != MaxSavedNodes {
		t.Fatalf("read %d nodes, %v", len(got.Nodes), err)
	}
	for name, b := range map[string]string{
		"truncated": `{"nodes":[{"id":"`,
		"empty":     ``,
		"not json":  "\x00\x01",
		"bad port":  `{"port":70000,"nodes":[]}`,
		"too big":   `{"nodes":[` + strings.Repeat(" ", maxNodesFile) + `]}`,
	} {
		os.WriteFile(path, []byte(b), 0o600)
		if _, err := readNodes(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func FuzzReadNodes(f *testing.F) {
	f.Add([]byte(`{"port":7,"nodes":[{"id":"` + strings.Repeat("ab", 20) + `","addr":"127.0.0.1:9"}]}`))
	f.Add([]byte(`{"nodes":null}`))
	path := filepath.Join(f.TempDir(), "nodes.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		nf, err := readNodes(path)
		if err != nil {
			return
		}
		if len(nf.Nodes) > MaxSavedNodes || nf.Port < 0 || nf.Port > 65535 {
			t.Fatalf("accepted out of bounds: %d nodes, port %d", len(nf.Nodes), nf.Port)
		}
		for _, n := range nf.Nodes {
			if _, err := parseSaved(n); err != nil {
				t.Fatalf("accepted %+v: %v", n, err)
			}
		}
	})
}

// BEP 44 puts are refused: nothing but announces is stored.
func TestNoItems(t *testing.T) {
	var s noItems
	if s.Put(&bep44.Item{}) == nil {
		t.Fatal("an item was accepted")
	}
	if _, err := s.Get(bep44.Target{}); err != bep44.ErrItemNotFound {
		t.Fatalf("get: %v", err)
	}
}

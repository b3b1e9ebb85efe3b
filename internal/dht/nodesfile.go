package dht

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
)

// The persisted node table lets a node rejoin the DHT when every
// bootstrap node (the origins) is away.
const (
	// MaxSavedNodes bounds the nodes written and read back.
	MaxSavedNodes = 256
	// maxNodesFile bounds the bytes read from the file.
	maxNodesFile = 64 << 10
)

type savedNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

type nodesFile struct {
	// Port is the UDP port this node last listened on: reused when free,
	// so that the tables other nodes saved still reach it.
	Port  int         `json:"port,omitempty"`
	Nodes []savedNode `json:"nodes"`
}

// readNodes reads a nodes file. A missing file is no error; a damaged one
// is (the caller logs it and goes on without).
func readNodes(path string) (nodesFile, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nodesFile{}, nil
	} else if err != nil {
		return nodesFile{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxNodesFile+1))
	if err != nil {
		return nodesFile{}, err
	}
	if len(b) > maxNodesFile {
		return nodesFile{}, fmt.Errorf("%s: larger than %d bytes", path, maxNodesFile)
	}
	var nf nodesFile
	if err := json.Unmarshal(b, &nf); err != nil {
		return nodesFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if nf.Port < 0 || nf.Port > 65535 {
		return nodesFile{}, fmt.Errorf("%s: port %d", path, nf.Port)
	}
	var ok []savedNode
	for _, n := range nf.Nodes {
		if len(ok) == MaxSavedNodes {
			break
		}
		if _, err := parseSaved(n); err == nil {
			ok = append(ok, n)
		}
	}
	nf.Nodes = ok
	return nf, nil
}

func parseSaved(n savedNode) (netip.AddrPort, error) {
	if id, err := hex.DecodeString(n.ID); err != nil || len(id) != 20 {
		return netip.AddrPort{}, fmt.Errorf("node id %q", n.ID)
	}
	a, err := netip.ParseAddrPort(n.Addr)
	if err != nil || a.Port() == 0 || !a.Addr().IsValid() || a.Addr().IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("node address %q", n.Addr)
	}
	return a, nil
}

// writeNodes replaces path atomically: a temporary file in the same
// directory, synced, then renamed over it. A kill midway leaves the old
// file or the new one, never half of one.
func writeNodes(path string, nf nodesFile) error {
	b, err := json.Marshal(nf)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

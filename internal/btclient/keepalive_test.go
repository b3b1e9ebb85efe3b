package btclient

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// Every client we build bounds a connection writer's sleep: the library's
// writer can lose a wake-up (see keepAliveTimeout).
func TestClientConfigKeepAlive(t *testing.T) {
	cc, err := clientConfig(&Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cc.KeepAliveTimeout != time.Second {
		t.Fatalf("KeepAliveTimeout %v, want 1s", cc.KeepAliveTimeout)
	}
}

// The condition behind the startup stall of issue 14: a connection's
// writer asleep with work pending and no event coming to wake it. Here the
// work is a block the peer asked for, held back by the upload limiter;
// the limit is then lifted, which (like a wake-up lost in the library's
// writer) tells the writer nothing. The block must still go out, within a
// few keep-alive intervals, because the writer wakes on its own. With the
// library's default keep-alive (a minute) it would sit for up to a minute.
func TestSleepingWriterWakesWithoutAnEvent(t *testing.T) {
	info, data := buildInfo(t, "v1", 256<<10, []testFile{{"a.bin", 1 << 20}})
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	ih := metainfo.HashBytes(infoBytes)
	seedDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(seedDir, "v1"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seedDir, "v1", "a.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	// 1 byte a second, burst spent: a 16 KiB block waits hours.
	up := UploadLimiter()
	SetUploadRate(up, 1)
	up.ReserveN(time.Now(), MaxRequestLength)
	cl, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: t.TempDir(), Upload: up})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	budget := NewServeBudget(4 << 20)
	tor, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
		Storage: NewFileStorage(seedDir, TrustedCompletion{}, WithServeBudget(budget))})
	<-tor.GotInfo()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", cl.LocalPort()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var id [20]byte
	copy(id[:], "-KA0001-keepalive001")
	if _, err := pp.Handshake(ctx, c, &ih, id, pp.NewPeerExtensionBytes(pp.ExtensionBitFast)); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	msgs := make(chan pp.Message, 64)
	go func() {
		defer close(msgs)
		dec := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
		for {
			var m pp.Message
			if err := dec.Decode(&m); err != nil {
				return
			}
			msgs <- m
		}
	}()
	next := func(what string) pp.Message {
		t.Helper()
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("connection closed waiting for %s", what)
			}
			return m
		case <-ctx.Done():
			t.Fatalf("no message while waiting for %s", what)
		}
		return pp.Message{}
	}
	if _, err := c.Write(pp.Message{Type: pp.Interested}.MustMarshalBinary()); err != nil {
		t.Fatal(err)
	}
	for m := next("unchoke"); m.Keepalive || m.Type != pp.Unchoke; m = next("unchoke") {
	}
	req := pp.Message{Type: pp.Request, Index: 0, Begin: 0, Length: MaxRequestLength}
	if _, err := c.Write(req.MustMarshalBinary()); err != nil {
		t.Fatal(err)
	}
	// The block is read for the peer, then held by the limiter; the
	// writer keeps sleeping between keep-alives (two of them after the
	// read: the writer has seen the block and put it off at least once).
	for budget.Stats().InUse == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the block was never read for the peer")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for keepAlives := 0; keepAlives < 2; {
		m := next("keep-alives while the block is held")
		switch {
		case m.Keepalive:
			keepAlives++
		case m.Type == pp.Piece:
			t.Fatalf("block sent at 1 byte/s with the burst spent")
		}
	}

	// Lifting the limit wakes nobody; the block goes out anyway.
	SetUploadRate(up, 0)
	start := time.Now()
	for {
		m := next("the block")
		if m.Keepalive || m.Type != pp.Piece {
			continue
		}
		if m.Index != 0 || m.Begin != 0 || !bytes.Equal(m.Piece, data[:MaxRequestLength]) {
			t.Fatalf("got block %d/%d of %d bytes, want the first 16 KiB", m.Index, m.Begin, len(m.Piece))
		}
		break
	}
	// Generous: the writer wakes every second; the library's default
	// would leave it asleep for up to a minute.
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("block sent %v after the limit was lifted", waited)
	}
	t.Logf("block sent %v after the limit was lifted", time.Since(start).Round(time.Millisecond))
}

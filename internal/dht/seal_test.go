package dht

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := NewKey([]byte("a secret of the tenant"), "acme")
	s := newSealer(k)
	msg := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
	b := s.seal(msg, now)
	if len(b) != len(msg)+Overhead {
		t.Fatalf("sealed %d bytes, want %d", len(b), len(msg)+Overhead)
	}
	if bytes.Contains(b, []byte("ping")) {
		t.Fatal("sealed datagram shows its message")
	}
	got, err := s.open(b, now.Add(time.Minute))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %q %v", got, err)
	}
	flip := func(i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	for name, c := range map[string]struct {
		b   []byte
		k   Key
		at  time.Time
		err error
	}{
		"other tenant":    {b, NewKey([]byte("a secret of the tenant"), "globex"), now, errOpen},
		"no secret":       {b, NewKey(nil, "acme"), now, errOpen},
		"wrong secret":    {b, NewKey([]byte("guess"), "acme"), now, errOpen},
		"version":         {flip(0), k, now, errOpen},
		"nonce":           {flip(5), k, now, errOpen},
		"body":            {flip(40), k, now, errOpen},
		"tag":             {flip(len(b) - 1), k, now, errOpen},
		"truncated":       {b[:len(b)-1], k, now, errOpen},
		"short":           {b[:Overhead-1], k, now, errOpen},
		"empty":           {nil, k, now, errOpen},
		"plain krpc":      {msg, k, now, errOpen},
		"replayed late":   {b, k, now.Add(maxSkew + time.Second), errStale},
		"from the future": {b, k, now.Add(-maxSkew - time.Second), errStale},
	} {
		if _, err := newSealer(c.k).open(c.b, c.at); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
	if NewKey(nil, "acme").Target(TenantScope(), [20]byte{1}) == k.Target(TenantScope(), [20]byte{1}) {
		t.Fatal("targets do not depend on the secret")
	}
	if k.Target(SiteScope("eu", "a"), [20]byte{1}) == k.Target(SiteScope("eu", "b"), [20]byte{1}) ||
		k.Target(RegionScope("eu"), [20]byte{1}) == k.Target(TenantScope(), [20]byte{1}) {
		t.Fatal("scopes share a target")
	}
}

func FuzzOpen(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := newSealer(NewKey([]byte("k"), "acme"))
	f.Add(s.seal([]byte("d1:y1:qe"), now))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := s.open(b, now)
		if err != nil {
			return
		}
		// Forging needs the key: only the seed's own datagram opens.
		if !bytes.Equal(msg, []byte("d1:y1:qe")) {
			t.Fatalf("forged datagram opened: %q", msg)
		}
	})
}

func TestRateLimitPerSource(t *testing.T) {
	c := newSealedConn(nil, NewKey(nil, "t"), time.Now)
	now := time.Now()
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	n := 0
	for i := 0; i < 1000; i++ {
		if c.allow(a, now) {
			n++
		}
	}
	if n != sourceBurst {
		t.Fatalf("one source: %d allowed at once, want %d", n, sourceBurst)
	}
	if !c.allow(b, now) {
		t.Fatal("another source was limited")
	}
	if !c.allow(a, now.Add(time.Second)) {
		t.Fatal("no refill after a second")
	}
	for i := 0; i < 3*maxSources; i++ {
		c.allow(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), now)
	}
	if len(c.sources) > maxSources {
		t.Fatalf("%d sources tracked", len(c.sources))
	}
}

// A datagram that does not open never reaches the server; one that does
// arrives whole.
func TestSealedConnDropsStrangers(t *testing.T) {
	k := NewKey([]byte("k"), "acme")
	listen := func() net.PacketConn {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	rx := newSealedConn(listen(), k, time.Now)
	stranger := newSealedConn(listen(), NewKey([]byte("k"), "globex"), time.Now)
	plain := listen()
	friend := newSealedConn(listen(), k, time.Now)
	to := rx.LocalAddr()
	if _, err := stranger.WriteTo([]byte("d1:y1:qe"), to); err != nil {
		t.Fatal(err)
	}
	plain.WriteTo([]byte("d1:y1:qe"), to)
	friend.WriteTo([]byte("hello"), to)
	rx.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 100)
	n, from, err := rx.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" || from.String() != friend.LocalAddr().String() {
		t.Fatalf("read %q from %v: %v", buf[:n], from, err)
	}
	if rx.foreign.Load() != 2 || rx.received.Load() != 1 {
		t.Fatalf("foreign %d received %d", rx.foreign.Load(), rx.received.Load())
	}
}

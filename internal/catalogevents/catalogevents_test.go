package catalogevents

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	for _, step := range []func() error{
		func() error { return WriteRetry(&b, 5000) },
		func() error { return WriteChange(&b, 7) },
		func() error { return WriteHeartbeat(&b) },
		func() error { return WriteChange(&b, 1<<40) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	d := NewDecoder(&b)
	comments := 0
	d.OnComment = func() { comments++ }
	for _, want := range []int64{7, 1 << 40} {
		ev, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		v, err := Version(ev)
		if err != nil || v != want {
			t.Fatalf("event %+v: version %d, %v; want %d", ev, v, err, want)
		}
		if ev.ID != ev.Data {
			t.Errorf("id %q, data %q: want the version in both", ev.ID, ev.Data)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after the last event: %v, want EOF", err)
	}
	if comments != 1 {
		t.Errorf("%d comments seen, want 1", comments)
	}
	if err := WriteChange(&b, -1); err == nil {
		t.Error("a negative version was written")
	}
}

func TestDecoderRules(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Event
		err      error
	}{
		{"crlf and bom", "\ufeffevent: catalog\r\ndata: 3\r\n\r\n", []Event{{Type: "catalog", Data: "3"}}, io.EOF},
		{"no space after colon", "event:catalog\ndata:4\n\n", []Event{{Type: "catalog", Data: "4"}}, io.EOF},
		{"default type, multi-line data", "data: a\ndata: b\n\n", []Event{{Type: "message", Data: "a\nb"}}, io.EOF},
		{"unknown field and bare id", "foo: bar\nid\ndata: x\n\n", []Event{{Type: "message", Data: "x"}}, io.EOF},
		{"no data dispatches nothing", "event: catalog\n\ndata: 1\nevent: catalog\n\n", []Event{{Type: "catalog", Data: "1"}}, io.EOF},
		{"retry kept with its event", "retry: 250\ndata: 1\n\n", []Event{{Type: "message", Data: "1", Retry: 250}}, io.EOF},
		{"bad retry ignored", "retry: -5\nretry: x\ndata: 1\n\n", []Event{{Type: "message", Data: "1"}}, io.EOF},
		{"cut inside an event", "event: catalog\ndata: 1\n", nil, io.ErrUnexpectedEOF},
		{"cut inside a line", "event: cat", nil, io.ErrUnexpectedEOF},
		{"line too long", "data: " + strings.Repeat("x", MaxLine) + "\n\n", nil, ErrLineTooLong},
		{"unterminated long line", strings.Repeat("x", 10*MaxLine), nil, ErrLineTooLong},
		{"event too large", strings.Repeat("data: "+strings.Repeat("y", 500)+"\n", 10) + "\n", nil, ErrEventTooLarge},
		{"comments do not add up", strings.Repeat(": "+strings.Repeat("z", 900)+"\n", 20) + "data: 1\n\n", []Event{{Type: "message", Data: "1"}}, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.in))
			for _, want := range tc.want {
				got, err := d.Next()
				if err != nil {
					t.Fatalf("Next: %v, want %+v", err, want)
				}
				if got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			}
			if _, err := d.Next(); !errors.Is(err, tc.err) {
				t.Fatalf("end: %v, want %v", err, tc.err)
			}
		})
	}
}

func TestVersionIsStrict(t *testing.T) {
	for _, data := range []string{"", "-1", "+1", " 1", "1 ", "1\n2", "0x10", "99999999999999999999", "1.0"} {
		if v, err := Version(Event{Type: EventCatalog, Data: data}); !errors.Is(err, ErrBadChange) {
			t.Errorf("data %q: version %d, %v; want ErrBadChange", data, v, err)
		}
	}
	if _, err := Version(Event{Type: "message", Data: "1"}); !errors.Is(err, ErrBadChange) {
		t.Errorf("a message event was taken for a change: %v", err)
	}
	if v, err := Version(Event{Type: EventCatalog, Data: "0"}); err != nil || v != 0 {
		t.Errorf("version 0: %d, %v", v, err)
	}
}

// FuzzDecoder: no input panics the decoder or makes it return an event
// over the limits, and it always ends (EOF or an error).
func FuzzDecoder(f *testing.F) {
	var b bytes.Buffer
	WriteRetry(&b, 1000)
	WriteChange(&b, 42)
	WriteHeartbeat(&b)
	f.Add(b.Bytes())
	f.Add([]byte("\ufeffdata: a\r\ndata: b\r\n\r\nevent: catalog\ndata: 9\nid: 9\n\n"))
	f.Add([]byte(strings.Repeat("x", 2*MaxLine)))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in))
		for i := 0; ; i++ {
			ev, err := d.Next()
			if err != nil {
				return
			}
			if i > len(in) {
				t.Fatalf("more events (%d) than input bytes", i)
			}
			if len(ev.Data) > MaxEvent || len(ev.Type) > MaxLine || len(ev.ID) > MaxLine {
				t.Fatalf("event over the limits: %d data bytes", len(ev.Data))
			}
			if v, err := Version(ev); err == nil && v < 0 {
				t.Fatalf("negative version %d accepted", v)
			}
		}
	})
}

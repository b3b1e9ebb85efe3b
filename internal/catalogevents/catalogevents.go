// Package catalogevents is the wire format of the origin's catalog change
// stream (GET /v1/catalog/events): Server-Sent Events whose only event,
// "catalog", carries the new timestamp version as a hint. Nothing in it is
// trusted: an agent that reads one refreshes its signed catalog, which TUF
// verifies as always. The origin writes with the Write functions; agents
// read with a Decoder, which bounds what a hostile or broken server can
// make them hold.
package catalogevents

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Path is where the origin serves the stream.
const Path = "/v1/catalog/events"

// ContentType is the stream's media type (SSE).
const ContentType = "text/event-stream"

// EventCatalog names the event that says the catalog changed.
const EventCatalog = "catalog"

// Decoder limits: a line longer than MaxLine or an event whose lines add
// up to more than MaxEvent ends the stream with an error. Ours are a few
// dozen bytes.
const (
	MaxLine  = 1024
	MaxEvent = 4096
)

var (
	// ErrLineTooLong is returned for a line over the decoder's limit.
	ErrLineTooLong = errors.New("catalog events: line too long")
	// ErrEventTooLarge is returned for an event over the decoder's limit.
	ErrEventTooLarge = errors.New("catalog events: event too large")
	// ErrBadChange is returned for a catalog event whose data is not a version.
	ErrBadChange = errors.New("catalog events: catalog event without a version")
)

// Event is one dispatched SSE event. Comments (heartbeats) are not events.
type Event struct {
	Type string // "message" when the stream named none
	ID   string
	Data string
	// Retry is the reconnection delay in milliseconds the server asked
	// for along with this event, 0 when it did not.
	Retry int64
}

// WriteChange writes a catalog event for timestamp version v; its id is
// the version too, so a client that reconnects can send Last-Event-ID.
func WriteChange(w io.Writer, v int64) error {
	if v < 0 {
		return fmt.Errorf("catalog events: negative version %d", v)
	}
	s := strconv.FormatInt(v, 10)
	_, err := io.WriteString(w, "event: "+EventCatalog+"\nid: "+s+"\ndata: "+s+"\n\n")
	return err
}

// WriteRetry asks the client to wait ms milliseconds before reconnecting
// (browsers' EventSource obey it; the agent's back-off is its own).
func WriteRetry(w io.Writer, ms int64) error {
	_, err := io.WriteString(w, "retry: "+strconv.FormatInt(ms, 10)+"\n\n")
	return err
}

// WriteHeartbeat writes a comment line: it keeps proxies from closing an
// idle stream and tells the client the server is alive.
func WriteHeartbeat(w io.Writer) error {
	_, err := io.WriteString(w, ": ping\n\n")
	return err
}

// Version returns the timestamp version a catalog event carries. Data must
// be a decimal number and nothing else.
func Version(ev Event) (int64, error) {
	if ev.Type != EventCatalog {
		return 0, fmt.Errorf("%w: event type %q", ErrBadChange, ev.Type)
	}
	if ev.Data == "" || len(ev.Data) > 19 || ev.Data[0] == '+' || ev.Data[0] == '-' {
		return 0, fmt.Errorf("%w: %q", ErrBadChange, ev.Data)
	}
	v, err := strconv.ParseInt(ev.Data, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadChange, ev.Data)
	}
	return v, nil
}

// Decoder reads events from an SSE stream (the WHATWG rules: field lines,
// comments, a blank line dispatches), with limits.
type Decoder struct {
	r       *bufio.Reader
	started bool
	// OnComment, if set, is called for every comment line (heartbeat).
	OnComment func()
}

// NewDecoder reads events from r.
func NewDecoder(r io.Reader) *Decoder {
	// ReadSlice fails with ErrBufferFull past the buffer: the line limit.
	return &Decoder{r: bufio.NewReaderSize(r, MaxLine+2)}
}

// Next returns the next event. It returns io.EOF when the stream ends
// between events, io.ErrUnexpectedEOF inside one, or a limit error.
func (d *Decoder) Next() (Event, error) {
	var (
		ev      Event
		data    []byte
		hasData bool
		size    int
		pending bool // a field was seen since the last dispatch
	)
	for {
		line, err := d.readLine()
		if err == io.EOF {
			if pending {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, io.EOF
		}
		if err != nil {
			return Event{}, err
		}
		size += len(line) + 1
		if size > MaxEvent {
			return Event{}, ErrEventTooLarge
		}
		if len(line) == 0 {
			if !hasData {
				// A blank line after only id/event/retry fields (or none)
				// dispatches nothing, as in EventSource.
				ev, size, pending = Event{}, 0, false
				continue
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.Data = string(data)
			return ev, nil
		}
		if line[0] == ':' {
			size -= len(line) + 1 // comments between events cost nothing
			if d.OnComment != nil {
				d.OnComment()
			}
			continue
		}
		pending = true
		name, value, found := bytes.Cut(line, []byte(":"))
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(name) {
		case "event":
			ev.Type = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
			}
		case "retry":
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 && len(value) > 0 && value[0] != '+' {
				ev.Retry = n
			}
		default:
			// Unknown fields are ignored (the SSE rule), within the limits.
		}
	}
}

// readLine returns one line without its end (LF or CRLF), refusing lines
// over MaxLine and a byte-order mark anywhere but the stream's start.
func (d *Decoder) readLine() ([]byte, error) {
	line, err := d.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, ErrLineTooLong
	}
	if err == io.EOF {
		if len(line) > 0 {
			return nil, io.ErrUnexpectedEOF // a line cut off
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if !d.started {
		d.started = true
		line = bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	if len(line) > MaxLine {
		return nil, ErrLineTooLong
	}
	return line, nil
}

package catalog

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// HTTPStore is a read-only Store for a catalog published over HTTP(S), for
// example a directory catalog served by the origin or a public bucket
// behind a CDN: key k is fetched from baseURL + "/" + k. Get, GetRange and
// Stat work; Put, Delete and List fail with errors wrapping ErrReadOnly
// (plain HTTP has no listing).
//
// An HTTPStore is safe for concurrent use.
type HTTPStore struct {
	base   string // ends with "/"
	client *http.Client
}

var (
	_ Store = (*HTTPStore)(nil)
	_ URLer = (*HTTPStore)(nil)
)

// NewHTTPStore returns a store reading from baseURL, an http or https URL
// without query or fragment. client nil means http.DefaultClient; requests
// are bounded only by the context passed to each method and by client.
func NewHTTPStore(baseURL string, client *http.Client) (*HTTPStore, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("http store %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http store %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("http store %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("http store %q: query and fragment are not allowed", baseURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	base := u.String()
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &HTTPStore{base: base, client: client}, nil
}

// String returns the base URL, without any password.
func (h *HTTPStore) String() string {
	u, err := url.Parse(h.base)
	if err != nil {
		return h.base
	}
	return u.Redacted()
}

// ObjectURL returns the URL of key, or "" for an invalid key.
func (h *HTTPStore) ObjectURL(key string) string {
	if CleanKey(key) != nil {
		return ""
	}
	return h.base + escapeKey(key)
}

func (h *HTTPStore) redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// do sends a request for key and returns the response for a status in ok.
// 404 and 410 map to ErrNotFound; any other status is an error naming the
// URL.
func (h *HTTPStore) do(ctx context.Context, method, key string, hdr http.Header, ok ...int) (*http.Response, string, error) {
	if err := CleanKey(key); err != nil {
		return nil, "", fmt.Errorf("%s: %w", h, err)
	}
	u := h.base + escapeKey(key)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, u, fmt.Errorf("%s %s: %w", method, h.redact(u), err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, u, fmt.Errorf("%s %s: %w", method, h.redact(u), err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, u, nil
		}
	}
	// Drain a little so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone:
		return nil, u, fmt.Errorf("%s %s: %s: %w", method, h.redact(u), resp.Status, ErrNotFound)
	case http.StatusRequestedRangeNotSatisfiable:
		return nil, u, fmt.Errorf("%s %s: %s: offset at or past the end of the object", method, h.redact(u), resp.Status)
	}
	return nil, u, fmt.Errorf("%s %s: unexpected status %s", method, h.redact(u), resp.Status)
}

// Get implements Store.
func (h *HTTPStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	resp, _, err := h.do(ctx, http.MethodGet, key, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// GetRange implements Store with a Range request. A server that ignores
// Range and answers 200 with the whole object is handled by skipping to
// offset in the body.
func (h *HTTPStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	switch {
	case offset < 0:
		return nil, fmt.Errorf("get %s from %s: negative offset %d", key, h, offset)
	case offset == 0 && length < 0:
		return h.Get(ctx, key)
	case length == 0:
		fi, err := h.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := rangeLength(fi.Size, offset, length); err != nil {
			return nil, fmt.Errorf("get %s from %s: %w", key, h, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	resp, u, err := h.do(ctx, http.MethodGet, key, http.Header{"Range": {rng}}, http.StatusPartialContent, http.StatusOK)
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (io.ReadCloser, error) {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s (%s): %s", h.redact(u), rng, fmt.Sprintf(format, args...))
	}
	if resp.StatusCode == http.StatusOK {
		// Range ignored: the body is the whole object.
		if resp.ContentLength >= 0 {
			if _, err := rangeLength(resp.ContentLength, offset, length); err != nil {
				return fail("%v", err)
			}
		}
		n, err := io.CopyN(io.Discard, resp.Body, offset)
		if err == io.EOF {
			return fail("offset %d is past the end of the %d-byte object", offset, n)
		}
		if err != nil {
			return fail("%v", err)
		}
	} else {
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail("%v", err)
		}
		if start != offset {
			return fail("server sent range starting at %d, not %d", start, offset)
		}
	}
	body := io.Reader(resp.Body)
	if length > 0 {
		body = io.LimitReader(body, length)
	}
	return readCloser{body, resp.Body}, nil
}

// contentRangeStart parses the first byte position of a Content-Range
// header such as "bytes 10-19/100".
func contentRangeStart(cr string) (int64, error) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	return n, nil
}

// Stat implements Store with a HEAD request; the server must send
// Content-Length.
func (h *HTTPStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	resp, u, err := h.do(ctx, http.MethodHead, key, nil, http.StatusOK)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return ObjectInfo{}, fmt.Errorf("HEAD %s: no Content-Length in the response", h.redact(u))
	}
	return ObjectInfo{Key: key, Size: resp.ContentLength}, nil
}

// Put fails: an HTTPStore is read-only.
func (h *HTTPStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return fmt.Errorf("put %s in %s: %w", key, h, ErrReadOnly)
}

// Delete fails: an HTTPStore is read-only.
func (h *HTTPStore) Delete(ctx context.Context, key string) error {
	return fmt.Errorf("delete %s in %s: %w", key, h, ErrReadOnly)
}

// List fails with an error wrapping ErrReadOnly: HTTP has no listing.
func (h *HTTPStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	return nil, fmt.Errorf("list %q in %s: cannot list over HTTP: %w", prefix, h, ErrReadOnly)
}

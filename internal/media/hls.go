package media

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
)

// hls reads one m3u8 (RFC 8216): a master playlist names variant and
// rendition playlists, a media playlist names segments and EXT-X-MAP init
// segments. Byte-range segments (EXT-X-BYTERANGE, EXT-X-MAP BYTERANGE) are
// refused: a segment must be its own file to sit on its own pieces.
// Encrypted streams (EXT-X-KEY other than METHOD=NONE) are refused too.
func (r *refs) hls(name string, b []byte) error {
	dir := path.Dir(name)
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) == 0 || strings.TrimRight(string(lines[0]), "\r") != "#EXTM3U" {
		return errors.New("not an HLS playlist: the first line is not #EXTM3U")
	}
	var master, mediaPl, wantURI bool
	for i, raw := range lines[1:] {
		if len(raw) > MaxLineLen {
			return fmt.Errorf("line %d is longer than %d bytes", i+2, MaxLineLen)
		}
		line := strings.TrimSpace(string(raw))
		n := i + 2
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#EXT"):
			tag, attrs, _ := strings.Cut(line, ":")
			switch tag {
			case "#EXT-X-STREAM-INF":
				master, wantURI = true, true
			case "#EXTINF":
				mediaPl, wantURI = true, true
			case "#EXT-X-BYTERANGE":
				return fmt.Errorf("line %d: EXT-X-BYTERANGE segments are not supported: each segment must be its own file", n)
			case "#EXT-X-MAP":
				mediaPl = true
				a, err := parseAttrs(attrs)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if _, ok := a["BYTERANGE"]; ok {
					return fmt.Errorf("line %d: EXT-X-MAP with BYTERANGE is not supported: the init segment must be its own file", n)
				}
				if err := r.hlsRef(dir, a["URI"], n, false); err != nil {
					return err
				}
			case "#EXT-X-KEY", "#EXT-X-SESSION-KEY":
				a, err := parseAttrs(attrs)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if a["METHOD"] != "NONE" {
					return fmt.Errorf("line %d: encrypted HLS (%s METHOD=%s) is not supported", n, tag, a["METHOD"])
				}
			case "#EXT-X-MEDIA", "#EXT-X-I-FRAME-STREAM-INF":
				master = true
				a, err := parseAttrs(attrs)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if u, ok := a["URI"]; ok {
					if err := r.hlsRef(dir, u, n, true); err != nil {
						return err
					}
				}
			case "#EXT-X-PLAYLIST-TYPE":
				if attrs == "EVENT" {
					return fmt.Errorf("line %d: an EVENT playlist is still growing: publish a VOD playlist", n)
				}
			}
		case strings.HasPrefix(line, "#"):
			continue // a comment
		default:
			if !wantURI {
				return fmt.Errorf("line %d: %q is not preceded by EXTINF or EXT-X-STREAM-INF", n, line)
			}
			wantURI = false
			if err := r.hlsRef(dir, line, n, master); err != nil {
				return err
			}
		}
		if master && mediaPl {
			return fmt.Errorf("line %d: playlist mixes master (EXT-X-STREAM-INF, EXT-X-MEDIA) and media (EXTINF, EXT-X-MAP) tags", n)
		}
	}
	if wantURI {
		return errors.New("playlist ends after a tag that needs a URI line")
	}
	return nil
}

func (r *refs) hlsRef(dir, uri string, line int, playlist bool) error {
	p, err := resolve(dir, uri)
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	if playlist {
		err = r.playlist(p)
	} else {
		err = r.segment(p)
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	return nil
}

// parseAttrs reads an HLS attribute list: NAME=VALUE pairs separated by
// commas, values plain or in double quotes (returned without them).
func parseAttrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("bad attribute list near %q", trunc(s))
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted attribute %s", trunc(name))
			}
			val, rest = rest[1:1+end], rest[2+end:]
			if rest != "" && !strings.HasPrefix(rest, ",") {
				return nil, fmt.Errorf("text after quoted attribute %s", trunc(name))
			}
		} else {
			val, rest, _ = strings.Cut(rest, ",")
			rest = "," + rest
			if rest == "," {
				rest = ""
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("attribute %s appears twice", trunc(name))
		}
		out[name] = val
		s = strings.TrimPrefix(rest, ",")
	}
	return out, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

package media

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
)

// The parts of an MPD (ISO/IEC 23009-1) that name files. Anything else is
// ignored; a live (dynamic) MPD is refused.
type mpd struct {
	XMLName  xml.Name   `xml:"MPD"`
	Type     string     `xml:"type,attr"`
	Duration string     `xml:"mediaPresentationDuration,attr"`
	BaseURL  []string   `xml:"BaseURL"`
	Periods  []mpdPerod `xml:"Period"`
}

type mpdPerod struct {
	Duration        string          `xml:"duration,attr"`
	BaseURL         []string        `xml:"BaseURL"`
	SegmentTemplate *segTemplate    `xml:"SegmentTemplate"`
	SegmentList     *segList        `xml:"SegmentList"`
	AdaptationSets  []adaptationSet `xml:"AdaptationSet"`
}

type adaptationSet struct {
	BaseURL         []string         `xml:"BaseURL"`
	SegmentTemplate *segTemplate     `xml:"SegmentTemplate"`
	SegmentList     *segList         `xml:"SegmentList"`
	Representations []representation `xml:"Representation"`
}

type representation struct {
	ID              string       `xml:"id,attr"`
	Bandwidth       string       `xml:"bandwidth,attr"`
	BaseURL         []string     `xml:"BaseURL"`
	SegmentTemplate *segTemplate `xml:"SegmentTemplate"`
	SegmentList     *segList     `xml:"SegmentList"`
}

type segTemplate struct {
	Media          *string   `xml:"media,attr"`
	Initialization *string   `xml:"initialization,attr"`
	StartNumber    *uint64   `xml:"startNumber,attr"`
	Timescale      *uint64   `xml:"timescale,attr"`
	Duration       *uint64   `xml:"duration,attr"`
	Timeline       *timeline `xml:"SegmentTimeline"`
}

type timeline struct {
	S []struct {
		T *uint64 `xml:"t,attr"`
		D uint64  `xml:"d,attr"`
		R int64   `xml:"r,attr"`
	} `xml:"S"`
}

type segList struct {
	Initialization *struct {
		SourceURL string `xml:"sourceURL,attr"`
		Range     string `xml:"range,attr"`
	} `xml:"Initialization"`
	SegmentURLs []struct {
		Media      string `xml:"media,attr"`
		MediaRange string `xml:"mediaRange,attr"`
	} `xml:"SegmentURL"`
}

// dash reads one MPD: SegmentTemplate ($Number$, $Time$, with @duration or
// a SegmentTimeline), SegmentList and one BaseURL per level; a
// Representation with none of these is one whole file at its BaseURL.
// Byte ranges (mediaRange, Initialization@range) are refused.
func (r *refs) dash(name string, b []byte) error {
	var m mpd
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("not a DASH MPD: %w", err)
	}
	if m.Type == "dynamic" {
		return errors.New("a dynamic (live) MPD is not a release: publish a static one")
	}
	total, err := isoDuration(m.Duration)
	if err != nil {
		return fmt.Errorf("mediaPresentationDuration: %w", err)
	}
	dir, err := baseDir(path.Dir(name), m.BaseURL)
	if err != nil {
		return err
	}
	if len(m.Periods) == 0 {
		return errors.New("MPD has no Period")
	}
	for pi, p := range m.Periods {
		pdir, err := baseDir(dir, p.BaseURL)
		if err != nil {
			return err
		}
		pdur := total
		if p.Duration != "" {
			if pdur, err = isoDuration(p.Duration); err != nil {
				return fmt.Errorf("period %d duration: %w", pi, err)
			}
		} else if len(m.Periods) > 1 {
			pdur = 0 // unknown: only a timeline or a list can count segments
		}
		for _, as := range p.AdaptationSets {
			adir, err := baseDir(pdir, as.BaseURL)
			if err != nil {
				return err
			}
			tmplA := mergeTemplate(p.SegmentTemplate, as.SegmentTemplate)
			listA := firstList(p.SegmentList, as.SegmentList)
			for _, rep := range as.Representations {
				rdir, err := baseDir(adir, rep.BaseURL)
				if err != nil {
					return err
				}
				tmpl := mergeTemplate(tmplA, rep.SegmentTemplate)
				list := firstList(listA, rep.SegmentList)
				switch {
				case tmpl != nil:
					err = r.dashTemplate(rdir, tmpl, rep, pdur)
				case list != nil:
					err = r.dashList(rdir, list)
				case len(rep.BaseURL) > 0:
					// One file per representation (SegmentBase or none).
					err = r.segment(rdir)
				default:
					err = fmt.Errorf("representation %q names no segments", rep.ID)
				}
				if err != nil {
					return fmt.Errorf("representation %q: %w", rep.ID, err)
				}
			}
		}
	}
	return nil
}

// baseDir applies the BaseURLs of one level to dir. A BaseURL ending in
// "/" is a directory; otherwise it names a file (for a Representation
// that is a single file), returned as is.
func baseDir(dir string, bases []string) (string, error) {
	switch len(bases) {
	case 0:
		return dir, nil
	case 1:
	default:
		return "", errors.New("more than one BaseURL at one level (alternative locations) is not supported")
	}
	u := strings.TrimSpace(bases[0])
	if u == "./" || u == "." {
		return dir, nil
	}
	p, err := resolve(dir, u)
	if err != nil {
		return "", fmt.Errorf("BaseURL: %w", err)
	}
	return p, nil
}

func firstList(outer, inner *segList) *segList {
	if inner != nil {
		return inner
	}
	return outer
}

// mergeTemplate gives inner's attributes, falling back to outer's (a
// SegmentTemplate inherits from the levels above it).
func mergeTemplate(outer, inner *segTemplate) *segTemplate {
	if outer == nil {
		return inner
	}
	if inner == nil {
		return outer
	}
	m := *inner
	if m.Media == nil {
		m.Media = outer.Media
	}
	if m.Initialization == nil {
		m.Initialization = outer.Initialization
	}
	if m.StartNumber == nil {
		m.StartNumber = outer.StartNumber
	}
	if m.Timescale == nil {
		m.Timescale = outer.Timescale
	}
	if m.Duration == nil {
		m.Duration = outer.Duration
	}
	if m.Timeline == nil {
		m.Timeline = outer.Timeline
	}
	return &m
}

func (r *refs) dashTemplate(dir string, t *segTemplate, rep representation, periodSeconds float64) error {
	if t.Initialization != nil {
		p, err := expand(*t.Initialization, rep, 0, 0, false)
		if err != nil {
			return fmt.Errorf("initialization: %w", err)
		}
		if err := r.dashRef(dir, p); err != nil {
			return err
		}
	}
	if t.Media == nil {
		return errors.New("SegmentTemplate has no media attribute")
	}
	num := uint64(1)
	if t.StartNumber != nil {
		num = *t.StartNumber
	}
	emit := func(time uint64) error {
		p, err := expand(*t.Media, rep, num, time, true)
		if err != nil {
			return fmt.Errorf("media: %w", err)
		}
		num++
		return r.dashRef(dir, p)
	}
	if t.Timeline != nil {
		var now uint64
		for i, s := range t.Timeline.S {
			if s.T != nil {
				now = *s.T
			}
			if s.R < 0 {
				return fmt.Errorf("SegmentTimeline S %d: a negative repeat count (until the period ends) is not supported", i)
			}
			if s.D == 0 {
				return fmt.Errorf("SegmentTimeline S %d has no duration", i)
			}
			if s.R >= MaxSegments {
				return fmt.Errorf("SegmentTimeline S %d repeats more than %d times", i, MaxSegments)
			}
			for range s.R + 1 {
				if err := emit(now); err != nil {
					return err
				}
				now += s.D
			}
		}
		return nil
	}
	if t.Duration == nil || *t.Duration == 0 {
		return errors.New("SegmentTemplate has neither a SegmentTimeline nor a duration")
	}
	if periodSeconds <= 0 {
		return errors.New("SegmentTemplate@duration needs a presentation or period duration to count segments")
	}
	scale := uint64(1)
	if t.Timescale != nil && *t.Timescale > 0 {
		scale = *t.Timescale
	}
	segSeconds := float64(*t.Duration) / float64(scale)
	n := math.Ceil(periodSeconds/segSeconds - 1e-9)
	if n > MaxSegments {
		return fmt.Errorf("SegmentTemplate gives %.0f segments, more than %d", n, MaxSegments)
	}
	for k := range uint64(n) {
		if err := emit(k * *t.Duration); err != nil {
			return err
		}
	}
	return nil
}

func (r *refs) dashList(dir string, l *segList) error {
	if l.Initialization != nil {
		if l.Initialization.Range != "" {
			return errors.New("SegmentList Initialization@range is not supported: the init segment must be its own file")
		}
		if err := r.dashRef(dir, l.Initialization.SourceURL); err != nil {
			return err
		}
	}
	if len(l.SegmentURLs) == 0 {
		return errors.New("SegmentList has no SegmentURL")
	}
	for _, s := range l.SegmentURLs {
		if s.MediaRange != "" {
			return errors.New("SegmentURL@mediaRange is not supported: each segment must be its own file")
		}
		if err := r.dashRef(dir, s.Media); err != nil {
			return err
		}
	}
	return nil
}

func (r *refs) dashRef(dir, uri string) error {
	p, err := resolve(dir, uri)
	if err != nil {
		return err
	}
	return r.segment(p)
}

// expand fills a SegmentTemplate's identifiers ($RepresentationID$,
// $Bandwidth$, $Number$, $Time$, each with an optional %0Nd width, and
// $$). Number and Time are refused where there is none (initialization).
func expand(tmpl string, rep representation, number, time uint64, media bool) (string, error) {
	var out strings.Builder
	for {
		i := strings.IndexByte(tmpl, '$')
		if i < 0 {
			out.WriteString(tmpl)
			break
		}
		out.WriteString(tmpl[:i])
		j := strings.IndexByte(tmpl[i+1:], '$')
		if j < 0 {
			return "", fmt.Errorf("unterminated $ in %q", trunc(tmpl))
		}
		id := tmpl[i+1 : i+1+j]
		tmpl = tmpl[i+2+j:]
		if id == "" {
			out.WriteByte('$')
			continue
		}
		name, format, hasFormat := strings.Cut(id, "%")
		width := 0
		if hasFormat {
			if len(format) < 2 || format[0] != '0' || format[len(format)-1] != 'd' {
				return "", fmt.Errorf("format %%%s of $%s$ is not %%0<width>d", format, name)
			}
			w, err := strconv.Atoi(format[1 : len(format)-1])
			if err != nil || w < 1 || w > 20 {
				return "", fmt.Errorf("bad width in $%s$", id)
			}
			width = w
		}
		var val string
		switch name {
		case "RepresentationID":
			if hasFormat {
				return "", errors.New("$RepresentationID$ takes no format")
			}
			val = rep.ID
		case "Bandwidth":
			val = rep.Bandwidth
		case "Number":
			if !media {
				return "", errors.New("$Number$ in an initialization template")
			}
			val = strconv.FormatUint(number, 10)
		case "Time":
			if !media {
				return "", errors.New("$Time$ in an initialization template")
			}
			val = strconv.FormatUint(time, 10)
		default:
			return "", fmt.Errorf("unknown template identifier $%s$", trunc(name))
		}
		if len(val) < width {
			val = strings.Repeat("0", width-len(val)) + val
		}
		out.WriteString(val)
		if out.Len() > MaxURILen {
			return "", fmt.Errorf("expanded reference longer than %d bytes", MaxURILen)
		}
	}
	return out.String(), nil
}

// isoDuration reads an xs:duration as MPDs write it (PnDTnHnMnS, no
// years or months); "" is 0.
func isoDuration(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(s, "P")
	if !ok {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration", trunc(s))
	}
	var total float64
	inTime := false
	units := map[byte]float64{'D': 86400, 'H': 3600, 'M': 60, 'S': 1}
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("%q: T twice", trunc(s))
			}
			inTime = true
			rest = rest[1:]
			continue
		}
		i := strings.IndexAny(rest, "YMWDHS")
		if i <= 0 {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration", trunc(s))
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("%q: bad number", trunc(s))
		}
		u := rest[i]
		if u == 'Y' || u == 'W' || (u == 'M' && !inTime) {
			return 0, fmt.Errorf("%q: years, months and weeks are not supported", trunc(s))
		}
		if (u == 'D') == inTime {
			return 0, fmt.Errorf("%q: unit %c on the wrong side of T", trunc(s), u)
		}
		total += v * units[u]
		rest = rest[i+1:]
	}
	if total > 1e9 {
		return 0, fmt.Errorf("%q is too long", trunc(s))
	}
	return total, nil
}

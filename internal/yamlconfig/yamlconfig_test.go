package yamlconfig

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/swarmship/swarmship/internal/fielderr"
)

type word string

func (w *word) UnmarshalText(b []byte) error {
	if string(b) == "bad" {
		return errors.New("bad word")
	}
	*w = word(b)
	return nil
}

type inner struct {
	Words []word `yaml:"words"`
	N     int    `yaml:"n"`
}

type testConfig struct {
	Name   string           `yaml:"name"`
	Inner  inner            `yaml:"inner"`
	List   []inner          `yaml:"list"`
	Named  map[string]inner `yaml:"named"`
	Inline struct {
		W word `yaml:"w"`
	} `yaml:",inline"`
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		finish    error
		want      string
	}{
		{"unknown field", "name: a\nnmae: b\n", nil, "c.yaml:2: field nmae not found"},
		{"type error", "name: a\ninner:\n  n: lots\n", nil, "c.yaml:3: cannot unmarshal"},
		{"text in a list in a struct", "inner:\n  words: [ok, bad]\n", nil, "c.yaml:2: inner.words[1]: bad word"},
		{"text in a list of structs", "list:\n  - words: [ok]\n  - words:\n      - ok\n      - bad\n", nil, "c.yaml:5: list[1].words[1]: bad word"},
		{"text in a map", "named:\n  x:\n    words: [bad]\n", nil, "c.yaml:3: named.x.words[0]: bad word"},
		{"text inlined", "w: bad\n", nil, "c.yaml:1: w: bad word"},
		{"field error", "name: a\ninner:\n  n: 3\n", fielderr.In("inner", fielderr.New("n", "too big")), "c.yaml:3: inner.n: too big"},
		{"field error in a list", "list:\n  - n: 1\n  - n: 2\n", fielderr.New("list[1].n", "odd"), "c.yaml:3: list[1].n: odd"},
		{"field error, absent field: its parent's line", "name: a\ninner:\n  n: 3\n", fielderr.New("inner.words", "none"), "c.yaml:2: inner.words: none"},
		{"plain error", "name: a\n", errors.New("broken"), "c.yaml: broken"},
		{"empty", "", nil, "c.yaml: config is empty"},
		{"too large", strings.Repeat("#", MaxSize+1), nil, "larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConfig
			err := Parse("c.yaml", []byte(tt.doc), &c, func() error { return tt.finish })
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLineOf(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a:\n  b:\n    - x: 1\n    - x: 2\n      y: [[1], [2, 3]]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"a": 1, "a.b": 2, "a.b[0]": 3, "a.b[1].x": 4, "a.b[1].y": 5, "a.b[9]": 2, "a.nope": 1, "zz": 0} {
		if got := LineOf(&doc, path); got != want {
			t.Errorf("LineOf(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestFieldErrorPaths(t *testing.T) {
	err := fielderr.In("rates", fielderr.In("", fielderr.New("profiles[1].down", "negative")))
	if got := err.Error(); got != "rates.profiles[1].down: negative" {
		t.Errorf("got %q", got)
	}
	if got := fielderr.In("subscriptions[0]", fielderr.New("", "not both")).Error(); got != "subscriptions[0]: not both" {
		t.Errorf("got %q", got)
	}
	if got := fielderr.In("peer_tls", errors.New("plain")).Error(); got != "peer_tls: plain" {
		t.Errorf("got %q", got)
	}
	if fielderr.In("x", nil) != nil {
		t.Error("In(nil) is not nil")
	}
}

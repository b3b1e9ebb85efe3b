// Package yamlconfig reads a role's YAML config file strictly: unknown
// fields are refused, and every error, from the decoder or from the
// components' validators (internal/fielderr), says file:line: field.path:
// why.
package yamlconfig

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// MaxSize bounds a config file; a larger one is refused unread.
const MaxSize = 1 << 20

// Parse decodes the YAML document b into v (a pointer to a config struct)
// and then calls finish (defaults, then validation), if not nil. name is
// the file name used in errors.
func Parse(name string, b []byte, v any, finish func() error) error {
	if len(b) > MaxSize {
		return fmt.Errorf("%s: config is larger than 1 MiB", name)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: config is empty", name)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return typeErrors(name, te)
		}
		// A TextUnmarshaler's error comes without a position: find the
		// value that fails.
		if path, line := failingText(&doc, reflect.TypeOf(v)); line > 0 {
			return fmt.Errorf("%s:%d: %s: %s", name, line, path, err)
		}
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if finish == nil {
		return nil
	}
	return Locate(name, &doc, finish())
}

// typeErrors turns "line 7: field x not found" into "agent.yaml:7: field x
// not found", one per decoder complaint.
func typeErrors(name string, te *yaml.TypeError) error {
	var msgs []string
	for _, e := range te.Errors {
		if rest, ok := strings.CutPrefix(e, "line "); ok {
			if num, msg, ok := strings.Cut(rest, ": "); ok {
				msgs = append(msgs, name+":"+num+": "+msg)
				continue
			}
		}
		msgs = append(msgs, name+": "+e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Locate prefixes err with name and, for a field error, the line of its
// field (or of the nearest parent present in doc): "name:line: path: why".
func Locate(name string, doc *yaml.Node, err error) error {
	if err == nil {
		return nil
	}
	var fe *fielderr.Error
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", name, err)
	}
	if line := LineOf(doc, fe.Path); line > 0 {
		return fmt.Errorf("%s:%d: %s", name, line, fe)
	}
	return fmt.Errorf("%s: %s", name, fe)
}

// LineOf finds the line of a field path such as "subscriptions[1].name" in
// a YAML document, or of its nearest existing parent; 0 if unknown.
func LineOf(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	if path == "" {
		return n.Line
	}
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		// One or more indexes: "a[1]" or "a[1][0]".
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			idx, err := strconv.Atoi(num)
			if !ok || err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				return line
			}
			n, line = n.Content[idx], n.Content[idx].Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// failingText walks the document along the Go type t and returns the path
// and line of the first scalar whose type's UnmarshalText refuses it.
func failingText(n *yaml.Node, t reflect.Type) (string, int) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return "", 0
		}
		n = n.Content[0]
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && reflect.PointerTo(t).Implements(textUnmarshaler) {
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return "", n.Line
		}
		return "", 0
	}
	switch {
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, item := range n.Content {
			if path, line := failingText(item, t.Elem()); line > 0 {
				return fielderr.Join(fielderr.Index("", i), path), line
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fieldType(t, key)
			if !ok {
				continue
			}
			if path, line := failingText(n.Content[i+1], ft); line > 0 {
				return fielderr.Join(key, path), line
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if path, line := failingText(n.Content[i+1], t.Elem()); line > 0 {
				return fielderr.Join(n.Content[i].Value, path), line
			}
		}
	}
	return "", 0
}

// fieldType finds the type of the struct field that YAML key maps to,
// looking into inlined structs.
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if ft, ok := fieldType(f.Type, key); ok {
				return ft, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f.Type, true
		}
	}
	return nil, false
}

// Package fielderr is a config error that names the field it is about.
//
// Each component validates its own section and names fields relative to
// itself ("ca", "profiles[1].down"); the parent that holds the section
// prefixes its key (In("peer_tls", err)), so the error that reaches the
// file loader carries the full path ("peer_tls.ca"), which the loader turns
// into file:line. It imports nothing so that pure packages (policy) can
// use it.
package fielderr

import (
	"errors"
	"fmt"
	"strconv"
)

// Error is a config error about the field at Path, e.g.
// "subscriptions[1].name"; Path is empty for the section itself.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// New returns an error about the field at path.
func New(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// In places err, returned by the validator of the section at prefix, in its
// parent: a field error's path gets prefix in front, any other error
// becomes an error about prefix itself. nil stays nil.
func In(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if !errors.As(err, &fe) {
		return &Error{Path: prefix, Msg: err.Error()}
	}
	return &Error{Path: Join(prefix, fe.Path), Msg: fe.Msg}
}

// Join appends a relative path to a parent path: Join("rates", "default"),
// Join("subscriptions", "[2].name").
func Join(parent, path string) string {
	switch {
	case parent == "":
		return path
	case path == "":
		return parent
	case path[0] == '[':
		return parent + path
	}
	return parent + "." + path
}

// Index names element i of the list at path: Index("profiles", 1) is
// "profiles[1]".
func Index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

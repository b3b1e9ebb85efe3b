//go:build race

package cmd

// raceEnabled builds test binaries with -race too, so that `go build`
// reuses the packages `go test -race` compiled and only links.
const raceEnabled = true

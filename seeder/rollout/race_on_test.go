//go:build race

package rollout

// raceOn: the race detector makes decoding 200 MiB of JSON take minutes.
const raceOn = true

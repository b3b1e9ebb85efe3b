//go:build !race

package rollout

const raceOn = false

//go:build !race

package seeder

const raceOn = false

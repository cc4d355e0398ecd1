//go:build !race

package devmongo

const raceEnabled = false

//go:build race

package devmongo

// raceEnabled: the race detector slows FerretDB's SQLite (C translated to Go)
// about tenfold, so the longest test does less work.
const raceEnabled = true

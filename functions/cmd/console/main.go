// Command console is aigw's console function: the web console over the
// public API (see package console).
//
//	console [serve]    serve the function (default)
//	console version    print the version
package main

import (
	"github.com/aigw/aigw/functions/console"
	"github.com/aigw/aigw/internal/fnserve"
)

var version = "dev"

func main() { fnserve.Main("console", version, console.Serve) }

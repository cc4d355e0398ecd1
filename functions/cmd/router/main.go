// Command router is aigw's router function: the public REST API of the
// algorithm catalog and jobs (see package router).
//
//	router [serve]    serve the function (default)
//	router version    print the version
package main

import (
	"github.com/aigw/aigw/functions/router"
	"github.com/aigw/aigw/internal/fnserve"
)

var version = "dev"

func main() { fnserve.Main("router", version, router.Serve) }

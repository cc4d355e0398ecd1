// Command aigw-echo is the echo reference algorithm: it reads
// {"message": string, "sleep_ms": int (optional)} on stdin, sleeps first, and
// writes {"message": ...} on stdout. Tests, demos and health checks use it.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

type input struct {
	Message *string `json:"message"`
	SleepMS int64   `json:"sleep_ms"`
}

func main() {
	if err := run(os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run(stdin io.Reader, stdout, stderr io.Writer) error {
	var in input
	dec := json.NewDecoder(stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if in.Message == nil {
		return fmt.Errorf("input: message is required")
	}
	if in.SleepMS < 0 || in.SleepMS > 3_600_000 {
		return fmt.Errorf("input: sleep_ms must be 0-3600000")
	}
	if in.SleepMS > 0 {
		fmt.Fprintf(stderr, "{\"progress\":0,\"message\":\"sleeping %d ms\"}\n", in.SleepMS)
		time.Sleep(time.Duration(in.SleepMS) * time.Millisecond)
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"message": *in.Message})
}

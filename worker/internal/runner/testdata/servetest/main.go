// Command servetest is a warm (serve) algorithm for the runner's and the
// agent's tests. It speaks docs/serve-protocol.md itself, without an SDK.
//
// Its first argument picks a set-up: "ok" (the default), "hang" (never
// ready), "crash" (exits 3), "garbage" (writes a line that is not JSON).
// With $PID_DIR set, every start appends "pid unix-nanoseconds" to
// $PID_DIR/starts. A job's input may ask for: message (echoed), sleep_ms
// (ended early by a cancel), progress, log, fail (a done with a non-retryable
// error), crash (exit 3 mid-job), crash_once (exit 3 unless $PID_DIR/crashed
// exists, which it then creates), garbage (a line that is not JSON), wrong_id
// (a done for another job), artifact (a file in the output directory).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

type msg struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Input     json.RawMessage `json:"input"`
	OutputDir string          `json:"output_dir"`
}

type input struct {
	Message   string `json:"message"`
	SleepMS   int    `json:"sleep_ms"`
	Progress  bool   `json:"progress"`
	Log       bool   `json:"log"`
	Fail      bool   `json:"fail"`
	Crash     bool   `json:"crash"`
	CrashOnce bool   `json:"crash_once"`
	Garbage   bool   `json:"garbage"`
	WrongID   bool   `json:"wrong_id"`
	Artifact  bool   `json:"artifact"`
}

var out = bufio.NewWriter(os.Stdout)

func send(v any) {
	b, _ := json.Marshal(v)
	out.Write(append(b, '\n'))
	out.Flush()
}

func main() {
	mode := "ok"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	pid := os.Getpid()
	if dir := os.Getenv("PID_DIR"); dir != "" {
		f, err := os.OpenFile(filepath.Join(dir, "starts"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
		if err == nil {
			fmt.Fprintf(f, "%d %d\n", pid, time.Now().UnixNano())
			f.Close()
		}
	}
	fmt.Fprintf(os.Stderr, "setting up (pid %d, mode %s, AIGW_SERVE=%s)\n", pid, mode, os.Getenv("AIGW_SERVE"))
	switch mode {
	case "hang":
		time.Sleep(time.Hour)
	case "crash":
		fmt.Fprintln(os.Stderr, "cannot load the model")
		os.Exit(3)
	case "garbage":
		fmt.Println("loading... 50%")
		time.Sleep(time.Hour)
	}
	if ms, _ := strconv.Atoi(os.Getenv("SETUP_MS")); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	lines := make(chan msg)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var m msg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	send(map[string]string{"type": "ready"})
	jobs := 0
	for m := range lines {
		if m.Type != "run" {
			continue
		}
		jobs++
		var in input
		_ = json.Unmarshal(m.Input, &in)
		if !run(m, in, pid, jobs, lines) {
			return
		}
	}
}

// run runs one job; false when stdin ended during it.
func run(m msg, in input, pid, jobs int, lines chan msg) bool {
	if in.Artifact {
		_ = os.WriteFile(filepath.Join(m.OutputDir, "result.txt"), []byte("made by "+strconv.Itoa(pid)), 0o644)
	}
	switch {
	case in.Progress:
		send(map[string]any{"type": "progress", "id": m.ID, "progress": 0.5, "message": "half way"})
	case in.Log:
		send(map[string]any{"type": "log", "id": m.ID, "line": "a log message"})
		fmt.Fprintln(os.Stderr, "a stderr line")
	case in.Crash:
		fmt.Fprintln(os.Stderr, "out of memory")
		os.Exit(3)
	case in.CrashOnce:
		mark := filepath.Join(os.Getenv("PID_DIR"), "crashed")
		if _, err := os.Stat(mark); err != nil {
			_ = os.WriteFile(mark, nil, 0o666)
			fmt.Fprintln(os.Stderr, "out of memory once")
			os.Exit(3)
		}
	case in.Garbage:
		fmt.Println("Traceback (most recent call last):")
	case in.WrongID:
		send(map[string]any{"type": "done", "id": "someone-else", "output": map[string]any{}})
	}
	if in.SleepMS > 0 {
		t := time.NewTimer(time.Duration(in.SleepMS) * time.Millisecond)
	wait:
		for {
			select {
			case <-t.C:
				break wait
			case c, ok := <-lines:
				if !ok {
					return false
				}
				if c.Type == "cancel" && c.ID == m.ID {
					send(map[string]any{"type": "done", "id": m.ID, "error": map[string]any{"message": "canceled", "retryable": false}})
					return true
				}
			}
		}
	}
	if in.Fail {
		send(map[string]any{"type": "done", "id": m.ID, "error": map[string]any{"message": "bad input: say what", "retryable": false}})
		return true
	}
	send(map[string]any{"type": "done", "id": m.ID, "output": map[string]any{"message": in.Message, "pid": pid, "jobs": jobs,
		"gpus": os.Getenv("CUDA_VISIBLE_DEVICES"), "algorithm": os.Getenv("AIGW_ALGORITHM"),
		"asset": os.Getenv("AIGW_ASSET_WEIGHTS")}})
	return true
}

// Command testfn is the function the gateway's tests and benchmark deploy: it
// serves the aigw function contract (HTTP on $PORT, GET /_/health) and a few
// behaviours to test a gateway with.
//
//	/_/health          200, or 503 when TESTFN_UNHEALTHY=1; with TESTFN_HEALTH_DIR
//	                   set, the file <dir>/<pid> decides: "sick" 503, "hang" no
//	                   answer until the request ends, "slow" 200 after 1.5 s,
//	                   missing or else 200
//	/crash             exits with status 3 (a crash)
//	/sse?n=N           N server-sent events, 50ms apart, flushed one by one
//	/sleep?ms=N        answers after N ms
//	/status?code=N     answers with status N
//	/until?file=F      503 until the file F exists, then 200
//	/env?key=K         the value of env K
//	/secret?name=N     the content of $AIGW_SECRETS_DIR/N
//	/print?text=T      prints T and the Authorization header to stdout, then echoes
//	anything else      echoes method, path, query, body and headers as JSON
//	                   (and prints the query parameter print, if given)
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	RawPath string              `json:"raw_path"` // as escaped on the wire
	Query   string              `json:"query"`
	Body    string              `json:"body"`
	Header  map[string][]string `json:"header"`
	PID     int                 `json:"pid"`
	Version string              `json:"version"`
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	fmt.Printf("testfn starting on port %s pid %d\n", port, os.Getpid())
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: http.HandlerFunc(serve)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		fmt.Println("testfn got SIGTERM")
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "testfn:", err)
		os.Exit(1)
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch r.URL.Path {
	case "/_/health":
		mode := ""
		if dir := os.Getenv("TESTFN_HEALTH_DIR"); dir != "" {
			b, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(os.Getpid())))
			mode = string(b)
		}
		switch {
		case os.Getenv("TESTFN_UNHEALTHY") == "1" || mode == "sick":
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		case mode == "hang":
			<-r.Context().Done()
		case mode == "slow":
			time.Sleep(1500 * time.Millisecond)
			fmt.Fprintln(w, "ok")
		default:
			fmt.Fprintln(w, "ok")
		}
	case "/crash":
		fmt.Println("testfn crashing on request")
		os.Exit(3)
	case "/sse":
		n, _ := strconv.Atoi(q.Get("n"))
		w.Header().Set("Content-Type", "text/event-stream")
		f, _ := w.(http.Flusher)
		for i := range n {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if f != nil {
				f.Flush()
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "/sleep":
		ms, _ := strconv.Atoi(q.Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d\n", ms)
	case "/status":
		code, err := strconv.Atoi(q.Get("code"))
		if err != nil {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n", code)
	case "/until":
		if _, err := os.Stat(q.Get("file")); err != nil {
			fmt.Println("testfn until: not yet")
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "done")
	case "/env":
		fmt.Fprint(w, os.Getenv(q.Get("key")))
	case "/secret":
		b, err := os.ReadFile(filepath.Join(os.Getenv("AIGW_SECRETS_DIR"), filepath.Base(q.Get("name"))))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	default:
		if r.URL.Path == "/print" {
			fmt.Println(q.Get("text") + r.Header.Get("Authorization"))
		}
		if v := q.Get("print"); v != "" {
			fmt.Println(v)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: string(body),
			Header: r.Header, PID: os.Getpid(), Version: os.Getenv("TESTFN_VERSION"),
		})
	}
}

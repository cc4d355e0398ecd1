package provider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/internal/web"
)

// MakeLogsHandler serves GET /system/logs?name=&tail=&since=&follow= as
// faas-provider's log handler does: newline-delimited logs.Message JSON,
// flushed line by line; with follow it streams until the client leaves.
func MakeLogsHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		req := logs.Request{Name: q.Get("name"), Namespace: q.Get("namespace"), Instance: q.Get("instance")}
		if err := fnregistry.ValidNamespace(req.Namespace); err != nil {
			return toHTTP(err)
		}
		if v := q.Get("tail"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return web.New(http.StatusUnprocessableEntity, fmt.Sprintf("tail %q: want a number", v), err)
			}
			req.Tail = n
		}
		if v := q.Get("follow"); v != "" {
			f, err := strconv.ParseBool(v)
			if err != nil {
				return web.New(http.StatusUnprocessableEntity, fmt.Sprintf("follow %q: want true or false", v), err)
			}
			req.Follow = f
		}
		var since time.Time
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return web.New(http.StatusUnprocessableEntity, fmt.Sprintf("since %q: want RFC 3339", v), err)
			}
			since = t
		}
		f, ok := d.Functions.Lookup(req.Name)
		if !ok {
			return web.New(http.StatusNotFound, fmt.Sprintf("function %s not found", req.Name), nil)
		}
		var past []logs.Message
		var next <-chan logs.Message
		if req.Follow {
			var cancel func()
			past, next, cancel = f.Logs().Follow(since, req.Tail)
			defer cancel()
		} else {
			past = f.Logs().Snapshot(since, req.Tail)
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		write := func(m logs.Message) error {
			if req.Instance != "" && m.Instance != req.Instance {
				return nil
			}
			if err := enc.Encode(m); err != nil {
				return err
			}
			return rc.Flush()
		}
		for _, m := range past {
			if err := write(m); err != nil {
				return nil // the client left
			}
		}
		_ = rc.Flush()
		for next != nil {
			select {
			case <-r.Context().Done():
				return nil
			case m := <-next:
				if err := write(m); err != nil {
					return nil
				}
			}
		}
		return nil
	})
}

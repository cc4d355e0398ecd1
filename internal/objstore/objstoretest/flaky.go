package objstoretest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aigw/aigw/internal/objstore"
)

// Proxy is a TCP proxy in front of the real store that drops every
// connection while it is down: an object store outage on demand. Signatures
// stay valid through it (they cover the Host the client dialled).
type Proxy struct {
	l      net.Listener
	target string
	down   atomic.Bool
	drops  atomic.Int64
	wg     sync.WaitGroup
}

// Flaky starts a Proxy to cfg's store, down at first, closed when t ends,
// and returns it with cfg pointed at it.
func Flaky(t testing.TB, cfg objstore.Config) (*Proxy, objstore.Config) {
	t.Helper()
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{l: l, target: u.Host}
	p.down.Store(true)
	p.wg.Go(p.serve)
	t.Cleanup(func() { _ = l.Close(); p.wg.Wait() })
	cfg.Endpoint = "http://" + l.Addr().String()
	cfg.PublicEndpoint = ""
	return p, cfg
}

// SetDown drops (true) or forwards (false) new connections.
func (p *Proxy) SetDown(down bool) { p.down.Store(down) }

// Drops is how many connections were dropped.
func (p *Proxy) Drops() int64 { return p.drops.Load() }

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			p.drops.Add(1)
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.pipe(c) })
	}
}

func (p *Proxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}

// Package devmongo is aigw's MongoDB-wire server for development and CI: FerretDB
// v1.24 with its SQLite backend, made linearizable.
//
// FerretDB's conditional updates are not atomic: goroutines racing
// findOneAndUpdate({_id, state: "queued"}, {$set: {state: "running"}}) on one
// document often see several winners. Here FerretDB listens on a private Unix
// socket only, and the public TCP address is served by a wire-protocol proxy
// that never lets two commands that may touch the same document reach
// FerretDB at the same time (lanes.go): a command pinned to documents by _id
// holds those documents' lanes, and runs beside commands on other documents
// and beside reads; a command that may touch many documents, and DDL, runs
// alone; writes to one database file pass a gate of two, where SQLite would
// make them take turns anyway. A request holds its lanes from being forwarded
// until its full reply has been read back. Every client connection gets its own FerretDB
// connection, so cursors and sessions stay per connection.
//
// Two things keep a lookup by _id independent of the collection's size, as on
// MongoDB: each collection's table gets an SQLite index on the expression
// FerretDB's _id lookups use (idindex.go), and a command whose filter is _id
// plus simple conditions, such as a compare-and-set on {_id, state}, is
// narrowed to {_id} after the proxy has checked the conditions itself while
// holding the document's lane (narrow.go). A query on fields with a MongoDB index, which FerretDB
// answers by reading the whole collection, is answered from a mirror of that
// index in SQLite, in time bounded by its candidates (mirror.go, indexed.go).
// A createIndexes of indexes that already exist is answered as MongoDB
// answers it, which FerretDB gets wrong (createindexes.go).
//
// It is a stand-in for tests, never for production, which uses MongoDB.
package devmongo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Config configures a Server.
type Config struct {
	// Addr is the public TCP address; "127.0.0.1:0" picks a free port.
	Addr string
	// DataDir holds FerretDB's SQLite files; it is created if missing.
	DataDir string
	// Logger receives the proxy's logs; nil means slog.Default().
	Logger *slog.Logger
	// BackendLogger receives FerretDB's own logs; nil discards them.
	BackendLogger *slog.Logger
	// ExchangeTimeout bounds one request/reply exchange with FerretDB (the
	// time a command may hold its lanes); 0 means 5 minutes.
	ExchangeTimeout time.Duration
}

// Server is a running FerretDB behind the proxy.
type Server struct {
	log      *slog.Logger
	ln       net.Listener
	sockDir  string
	sockPath string
	timeout  time.Duration

	// lanes keeps commands that may touch the same document apart
	// (lanes.go): a request holds its lanes from being forwarded to FerretDB
	// until its whole reply has been read.
	lanes   *lanes
	writes  *writeGate
	closing chan struct{}

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	conn  sync.WaitGroup // connection handlers and the accept loop

	stopBackend context.CancelFunc
	backendDone chan struct{} // closed when FerretDB's Run returns

	nextConnID atomic.Uint64
	requests   atomic.Uint64
	narrowed   atomic.Uint64 // commands whose filter was narrowed to {_id}
	indexed    atomic.Uint64 // queries answered through mirrored indexes
	exclusive  atomic.Uint64 // commands that ran alone

	ids       *idIndexer
	closeOnce sync.Once
	closeErr  error
}

// Start starts FerretDB and the proxy, and returns once a ping through FerretDB
// has succeeded. ctx bounds the start only; Close stops the server.
func Start(ctx context.Context, cfg Config) (s *Server, err error) {
	if cfg.Addr == "" {
		return nil, errors.New("devmongo: empty listen address")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("devmongo: empty data directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	backendLog := cfg.BackendLogger
	if backendLog == nil {
		backendLog = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.ExchangeTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}

	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devmongo: data directory: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("devmongo: data directory: %w", err)
	}

	if n := removeOrphans(dataDir, log); n > 0 {
		log.Info("devmongo: removed the files dropped databases left", "bytes", n)
	}

	// A private directory (0700) keeps the socket out of other users' reach
	// and its path short (a Unix socket path has at most 107 bytes).
	sockDir, err := os.MkdirTemp("", "aigw-devmongo-")
	if err != nil {
		return nil, fmt.Errorf("devmongo: socket directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(sockDir)
		}
	}()
	sockPath := filepath.Join(sockDir, "ferretdb.sock")

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("devmongo: %w", err)
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()

	// synchronous(normal): in WAL mode, commits survive a crash of this
	// process, not of the machine; no fsync per commit. Enough for dev and CI.
	// temp_store(memory): SQLite's statement journal stays in memory. FerretDB
	// runs each update in a transaction, so every UPDATE keeps a statement
	// journal of the pages it changes; a job record's update changes a page of
	// each of its collection's expression indexes, past the 64 KiB after
	// which the journal spills to a temporary file: a write(2) per page, which
	// was a sixth of the server's CPU time in the worker bench (pprof).
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sockPath},
		Logger:    backendLog,
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: dataDir + "/", RawQuery: "_pragma=synchronous(normal)&_pragma=temp_store(memory)"}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("devmongo: ferretdb: %w", err)
	}
	backendCtx, stopBackend := context.WithCancel(context.Background())
	backendDone := make(chan struct{})
	go func() {
		defer close(backendDone)
		_ = fdb.Run(backendCtx) // always nil; it returns when backendCtx ends
	}()
	defer func() {
		if err != nil {
			stopBackend()
			<-backendDone
		}
	}()

	s = &Server{
		log:         log,
		ln:          ln,
		sockDir:     sockDir,
		sockPath:    sockPath,
		timeout:     timeout,
		lanes:       newLanes(),
		writes:      newWriteGate(),
		closing:     make(chan struct{}),
		conns:       make(map[*proxyConn]struct{}),
		stopBackend: stopBackend,
		backendDone: backendDone,
		ids:         newIDIndexer(dataDir, log),
	}
	if err := s.pingBackend(ctx); err != nil {
		return nil, fmt.Errorf("devmongo: ferretdb not ready: %w", err)
	}

	s.conn.Add(1)
	go s.acceptLoop()
	log.Info("devmongo listening", "addr", ln.Addr().String(), "data_dir", dataDir)
	return s, nil
}

// Addr is the proxy's TCP address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URI is a MongoDB connection string for the proxy.
func (s *Server) URI() string { return "mongodb://" + s.ln.Addr().String() + "/" }

// Done is closed when FerretDB has stopped, whether by Close or on its own.
func (s *Server) Done() <-chan struct{} { return s.backendDone }

// Close stops accepting, lets the exchanges in progress (if any) finish for up
// to ten seconds, closes every connection and stops FerretDB. A second call
// returns the first one's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	close(s.closing)
	err := s.ln.Close()

	// Taking every lane waits for the exchanges in progress, so no request
	// is cut off inside FerretDB; the requests still waiting give up.
	abort := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(abort) })
	if !s.lanes.acquire(&lockReq{excl: true}, abort) {
		s.log.Warn("devmongo: an exchange is still running; closing anyway")
	}
	timer.Stop()
	s.mu.Lock()
	for pc := range s.conns {
		pc.close()
	}
	s.mu.Unlock()
	s.conn.Wait()

	s.ids.close()
	s.stopBackend()
	<-s.backendDone
	_ = os.RemoveAll(s.sockDir)
	s.log.Info("devmongo stopped", "requests", s.requests.Load(), "exclusive", s.exclusive.Load(),
		"narrowed", s.narrowed.Load(), "indexed", s.indexed.Load())
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.conn.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			// Temporary errors (e.g. too many open files): back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("devmongo: accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.conn.Add(1)
		go s.serve(c)
	}
}

// proxyConn is one client connection and its own FerretDB connection.
type proxyConn struct {
	id      uint64
	client  net.Conn
	backend net.Conn
	br      *bufio.Reader // reads backend
}

// close closes both connections; closing twice is harmless.
func (pc *proxyConn) close() {
	_ = pc.client.Close()
	if pc.backend != nil {
		_ = pc.backend.Close()
	}
}

// track registers pc; it reports false when the server is closing.
func (s *Server) track(pc *proxyConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closing:
		return false
	default:
	}
	s.conns[pc] = struct{}{}
	return true
}

func (s *Server) untrack(pc *proxyConn) {
	s.mu.Lock()
	delete(s.conns, pc)
	s.mu.Unlock()
	pc.close()
}

func (s *Server) serve(client net.Conn) {
	defer s.conn.Done()
	pc := &proxyConn{id: s.nextConnID.Add(1), client: client}
	log := s.log.With("conn", pc.id, "remote", client.RemoteAddr().String())
	if !s.track(pc) {
		pc.close()
		return
	}
	defer s.untrack(pc)

	backend, err := net.DialTimeout("unix", s.sockPath, 10*time.Second)
	if err != nil {
		log.Error("devmongo: cannot reach ferretdb", "err", err)
		return
	}
	s.mu.Lock()
	pc.backend = backend
	s.mu.Unlock()
	select { // Close may have run between track and the assignment above
	case <-s.closing:
		pc.close()
		return
	default:
	}
	pc.br = bufio.NewReader(backend)
	log.Debug("client connected")

	cr := bufio.NewReader(client)
	var n uint64
	for {
		req, err := readMessage(cr)
		if err != nil {
			if errors.Is(err, errFraming) {
				log.Warn("devmongo: bad request; closing connection", "err", err)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("client read failed", "err", err)
			}
			break
		}
		reply, err := s.exchange(pc, req)
		if err != nil {
			if !errors.Is(err, errClosing) {
				log.Warn("devmongo: exchange failed; closing connection", "err", err, "opcode", req.opCode())
			}
			break
		}
		n++
		if len(reply) == 0 {
			continue
		}
		_ = client.SetWriteDeadline(time.Now().Add(s.timeout))
		if _, err := client.Write(reply); err != nil {
			log.Debug("client went away before its reply", "err", err)
			break
		}
	}
	log.Debug("client disconnected", "requests", n)
}

var errClosing = errors.New("devmongo: server closing")

// dataFree are the commands that read and write no documents: the handshake,
// liveness checks, and endSessions (FerretDB v1.24 has no sessions). They take
// no lanes, not even beside an exclusive command, so that opening
// connections, driver heartbeats and health checks stay quick while data
// commands queue; running them beside another command cannot break
// linearizability.
var dataFree = map[string]bool{
	"hello":       true,
	"isMaster":    true,
	"ismaster":    true,
	"ping":        true,
	"endSessions": true,
}

// slowExchange is how long an exchange may hold its lanes before a warning.
const slowExchange = 2 * time.Second

// exchange forwards req to FerretDB and returns the bytes to send back to the
// client (none for a moreToCome request), all while holding the lanes req
// needs (none for a data-free command).
func (s *Server) exchange(pc *proxyConn, req message) ([]byte, error) {
	var wantReply bool
	switch req.opCode() {
	case opMsg:
		wantReply = !req.moreToCome()
	case opQuery:
		wantReply = true
	default:
		// OP_COMPRESSED is never negotiated (FerretDB offers no compressors);
		// OP_INSERT, OP_GET_MORE and the rest were removed in MongoDB 6.0 and
		// FerretDB answers none of them.
		return nil, fmt.Errorf("unsupported opcode %d", req.opCode())
	}
	cmd := commandName(req)
	s.requests.Add(1)
	db, coll := commandTarget(req)

	pinnedWrite := false
	if !wantReply || !dataFree[cmd] {
		queued := time.Now()
		lk, err := s.lock(req, cmd, db, coll)
		if err != nil {
			return nil, err
		}
		pinnedWrite = !lk.excl && !readCommands[cmd]
		start := time.Now()
		defer func() {
			s.lanes.release(lk)
			held := time.Since(start)
			if held >= slowExchange {
				s.log.Warn("devmongo: slow command held its lanes", "conn", pc.id, "cmd", cmd, "exclusive", lk.excl, "held", held)
			} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("exchange", "conn", pc.id, "cmd", cmd, "exclusive", lk.excl, "lanes", len(lk.keys),
					"waited", start.Sub(queued), "held", held)
			}
		}()
	}

	_ = pc.backend.SetDeadline(time.Now().Add(s.timeout))
	defer func() { _ = pc.backend.SetDeadline(time.Time{}) }()
	if cmd == "dropDatabase" {
		// Close the proxy's own handle on the file first, so that FerretDB
		// closes the last one and SQLite removes the WAL (see dropFiles).
		s.ids.forget(db, "")
	}
	if collCommands[cmd] && coll != "" {
		s.ensureIndex(db, coll)
		defer s.afterCommand(cmd, db, coll)
	} else if cmd == "drop" || cmd == "dropDatabase" || cmd == "renameCollection" || cmd == "dropIndexes" || cmd == "deleteIndexes" {
		defer s.afterCommand(cmd, db, coll)
	}
	if wantReply && cmd == "createIndexes" {
		if r, ok := parseCreateIndexes(req); ok {
			forward, reply, err := s.filterIndexes(pc, req, r)
			if err != nil {
				return nil, err
			}
			if reply != nil {
				return reply, nil
			}
			if forward != nil {
				req = forward
			}
		}
	}
	if wantReply {
		if n, ok := parseNarrowable(req); ok {
			narrowed, err := s.narrow(pc, n)
			if err != nil {
				return nil, err
			}
			if narrowed != nil {
				req = narrowed
			}
		} else if q, ok := parseIndexed(req); ok {
			forward, reply, err := s.answerIndexed(pc, q)
			if err != nil {
				return nil, err
			}
			if reply != nil {
				return reply, nil
			}
			if forward != nil {
				req = forward
			}
		}
	}
	if pinnedWrite {
		// At most writersPerDatabase writes per database file, in
		// arrival order (lanes.go: writeGate).
		release, err := s.writes.enter(db, s.closing)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	if _, err := pc.backend.Write(req); err != nil {
		return nil, fmt.Errorf("to ferretdb: %w", err)
	}

	if !wantReply {
		// The client expects nothing back. FerretDB v1.24 ignores moreToCome
		// and answers anyway; a later version might not. Either way, a ping
		// on the same connection whose reply we wait for proves the request
		// has been executed before the lanes are released; everything before the
		// ping's reply is dropped.
		return nil, s.syncBackend(pc, req.requestID())
	}
	return s.readReply(pc, req.requestID())
}

// readReply reads FerretDB's reply to request id on pc's connection, with the
// replies that follow it on an exhaust stream.
func (s *Server) readReply(pc *proxyConn, id int32) ([]byte, error) {
	var out []byte
	for i := 0; ; i++ {
		rep, err := readMessage(pc.br)
		if err != nil {
			return nil, fmt.Errorf("from ferretdb: %w", err)
		}
		if i == 0 && rep.responseTo() != id {
			return nil, fmt.Errorf("from ferretdb: reply to request %d, want %d", rep.responseTo(), id)
		}
		if len(out)+len(rep) > 4*maxMessageLen {
			return nil, errors.New("from ferretdb: exhaust reply stream too long")
		}
		out = append(out, rep...)
		// OP_REPLY has no moreToCome; an OP_MSG reply with it means more
		// replies follow (exhaust cursors, streaming hello).
		if rep.opCode() != opMsg || !rep.moreToCome() {
			return out, nil
		}
	}
}

// collCommands are the commands whose first value names a collection that
// FerretDB may look documents up in by _id, or create.
var collCommands = map[string]bool{
	"find": true, "findAndModify": true, "findandmodify": true, "update": true,
	"delete": true, "insert": true, "count": true, "distinct": true,
	"aggregate": true, "create": true, "createIndexes": true,
}

// ensureIndex gives the collection's table the _id index FerretDB's queries
// can use (see idIndexer).
func (s *Server) ensureIndex(db, coll string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	s.ids.ensure(ctx, db, coll)
}

// afterCommand runs, with the lanes still held, after a command on coll in db
// (cmd's collection, if any) has been executed.
func (s *Server) afterCommand(cmd, db, coll string) {
	switch cmd {
	case "drop":
		s.ids.forget(db, coll)
	case "dropDatabase":
		s.ids.forget(db, "")
		s.ids.dropFiles(db)
		s.writes.forget(db)
	case "renameCollection":
		s.ids.forgetAll()
	case "createIndexes", "dropIndexes", "deleteIndexes":
		// The mirrored indexes follow the collection's (mirror.go).
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		s.ids.resync(ctx, db, coll)
	default:
		s.ensureIndex(db, coll) // it may have created the collection
	}
}

// lock waits for the lanes req needs (see lanes.go): exclusive when classify
// says so, and when cmd is on a collection whose _id index the proxy has not
// yet made (idindex.go writes to the database file; it does so alone).
func (s *Server) lock(req message, cmd, db, coll string) (*lockReq, error) {
	excl, keys := classify(req)
	needsIndex := func() bool { return collCommands[cmd] && coll != "" && !s.ids.ready(db, coll) }
	for {
		if !excl && needsIndex() {
			excl, keys = true, nil
		}
		lk := &lockReq{excl: excl, keys: keys}
		if !s.lanes.acquire(lk, s.closing) {
			return nil, errClosing
		}
		if excl {
			s.exclusive.Add(1)
			return lk, nil
		}
		if !needsIndex() { // an exclusive command may have dropped it meanwhile
			return lk, nil
		}
		s.lanes.release(lk)
	}
}

// commandTarget returns the $db of an OP_MSG and the collection its command
// names (its first value, when a string).
func commandTarget(m message) (db, coll string) {
	if m.opCode() != opMsg {
		return "", ""
	}
	body, err := opMsgBody(m)
	if err != nil {
		return "", ""
	}
	db, _ = body.Lookup("$db").StringValueOK()
	if first, err := body.IndexErr(0); err == nil {
		coll, _ = first.Value().StringValueOK()
	}
	return db, coll
}

// syncBackend sends a ping on pc's FerretDB connection and reads until its
// reply, dropping whatever FerretDB sent before it. clientReqID is the
// requestID of the moreToCome request just forwarded.
func (s *Server) syncBackend(pc *proxyConn, clientReqID int32) error {
	id := int32(-1)
	if clientReqID == id {
		id = -2
	}
	ping, err := newOpMsg(id, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return err
	}
	if _, err := pc.backend.Write(ping); err != nil {
		return fmt.Errorf("to ferretdb: %w", err)
	}
	for {
		rep, err := readMessage(pc.br)
		if err != nil {
			return fmt.Errorf("from ferretdb: %w", err)
		}
		if rep.responseTo() == id {
			return nil
		}
	}
}

// pingBackend checks that FerretDB answers a ping on a fresh connection.
func (s *Server) pingBackend(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.sockPath)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	return ping(c)
}

// ping does one OP_MSG ping round trip on c and checks that the reply says ok.
func ping(c net.Conn) error {
	req, err := newOpMsg(1, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	rep, err := readMessage(bufio.NewReader(c))
	if err != nil {
		return err
	}
	doc, err := opMsgBody(rep)
	if err != nil {
		return err
	}
	if ok, _ := doc.Lookup("ok").AsFloat64OK(); ok != 1 {
		return fmt.Errorf("ping reply: %s", doc)
	}
	return nil
}

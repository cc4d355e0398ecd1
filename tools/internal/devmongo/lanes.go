package devmongo

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Lanes: FerretDB's conditional updates read a document, change it in Go and
// write it back, with nothing between the read and the write that stops a
// second command on the same document. So the proxy keeps two commands that
// may touch the same document from reaching FerretDB at the same time, and
// lets the rest run side by side:
//
//   - a command pinned to documents, whose filter (or whose inserted documents)
//     names each one by _id, holds the lane of each: a findAndModify, update or
//     delete whose filter has a top-level {_id: X} (a top-level field is ANDed
//     with the rest, so it matches X or nothing, whatever else the filter says,
//     upserts included), an insert of documents with _ids, a find with {_id: X}
//     (the proxy may narrow it: a probe and a find, which must see the same
//     document);
//   - a read (find, aggregate, count, distinct, getMore, listCollections...)
//     holds no lane: FerretDB reads with one SQLite statement, a snapshot, and
//     every document a read returns is one a write committed whole;
//   - every other command (a write with any other filter, which may touch many
//     documents; createIndexes, drop, dropDatabase and the rest of DDL; a
//     command the proxy does not know; any command on a collection whose _id
//     index is not yet in place, see idindex.go) is exclusive: it waits for
//     every command in progress and runs alone.
//
// Pinned commands and reads are "shared" and exclude exclusive ones. Requests
// are granted in arrival order among those that conflict (an exclusive one
// conflicts with all, two pinned ones when they share a lane), so commands on
// one document run in the order they came, and an exclusive command waiting
// holds back every later one (no starvation). A command takes all its lanes
// at once and never asks for more while it holds some, so there is no deadlock.
//
// SQLite itself lets one writer at a time into a database file. FerretDB's
// write transactions start with their write (UPDATE, INSERT, DELETE), so a
// second writer waits in SQLite's busy handler rather than fail; but that
// handler sleeps 1, 2, 5, ... up to 100 ms between tries, and newcomers take
// the lock from a writer in its long sleeps. With every pinned write let into
// FerretDB at once, 8 goroutines' transitions had half the p50 of the one
// global turn but three times its p99 (a second, on 2 loaded cores). So a
// pinned write also passes its database's gate (writeGate), in arrival order,
// once the proxy's own reads for it are done (narrow.go's probe), and holds it
// until FerretDB has answered. The gate lets writersPerDatabase writes in:
// one can read and compute in FerretDB while another writes, and at most one
// waits in SQLite, in its short first sleeps. Measured (README), 2 beat 1 and
// unlimited. Reads, probes and writes to other databases do not wait for it;
// reads in WAL mode do not wait for writers.

// lockReq is one command's request for the lanes.
type lockReq struct {
	excl    bool
	keys    []string // sorted, distinct; only when !excl
	ready   chan struct{}
	granted bool
}

// lanes grants lockReqs.
type lanes struct {
	mu     sync.Mutex
	queue  []*lockReq // waiting, in arrival order
	excl   bool       // an exclusive request holds the lanes
	shared int        // shared requests holding
	held   map[string]bool
}

func newLanes() *lanes { return &lanes{held: map[string]bool{}} }

// acquire waits until req can run. It returns false, holding nothing, when
// abort is closed first.
func (l *lanes) acquire(req *lockReq, abort <-chan struct{}) bool {
	req.ready = make(chan struct{})
	l.mu.Lock()
	l.queue = append(l.queue, req)
	l.grantLocked()
	l.mu.Unlock()
	select {
	case <-req.ready:
		return true
	case <-abort:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if req.granted {
		l.releaseLocked(req)
		return false
	}
	if i := slices.Index(l.queue, req); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	}
	l.grantLocked() // a request behind this one may go now
	return false
}

// release gives back what req holds.
func (l *lanes) release(req *lockReq) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(req)
}

func (l *lanes) releaseLocked(req *lockReq) {
	if req.excl {
		l.excl = false
	} else {
		l.shared--
		for _, k := range req.keys {
			delete(l.held, k)
		}
	}
	req.granted = false
	l.grantLocked()
}

// grantLocked grants, in arrival order, every waiting request that conflicts
// neither with the holders nor with an earlier waiting request.
func (l *lanes) grantLocked() {
	var waitKeys map[string]bool // lanes wanted by earlier waiting requests
	kept := l.queue[:0]
	for i, r := range l.queue {
		switch {
		case r.excl:
			if len(kept) == 0 && !l.excl && l.shared == 0 {
				l.excl = true
				l.grant(r)
				continue
			}
			// Nothing after an exclusive request overtakes it.
			kept = append(kept, l.queue[i:]...)
			clear(l.queue[len(kept):])
			l.queue = kept
			return
		case l.excl || l.conflicts(r.keys, waitKeys):
			if waitKeys == nil {
				waitKeys = map[string]bool{}
			}
			for _, k := range r.keys {
				waitKeys[k] = true
			}
			kept = append(kept, r)
		default:
			l.shared++
			for _, k := range r.keys {
				l.held[k] = true
			}
			l.grant(r)
		}
	}
	clear(l.queue[len(kept):])
	l.queue = kept
}

func (l *lanes) conflicts(keys []string, waitKeys map[string]bool) bool {
	for _, k := range keys {
		if l.held[k] || waitKeys[k] {
			return true
		}
	}
	return false
}

func (l *lanes) grant(r *lockReq) {
	r.granted = true
	close(r.ready)
}

// writersPerDatabase is how many pinned writes to one database FerretDB runs
// at a time.
const writersPerDatabase = 2

// writeGate lets writersPerDatabase pinned writes at a time per database reach
// FerretDB, in arrival order (a channel's senders are served first come,
// first served).
type writeGate struct {
	mu      sync.Mutex
	gates   map[string]chan struct{}
	waiting map[string]int // writes waiting, by database (for tests)
}

func newWriteGate() *writeGate {
	return &writeGate{gates: map[string]chan struct{}{}, waiting: map[string]int{}}
}

// enter waits for db's gate; the function it returns leaves it.
func (w *writeGate) enter(db string, abort <-chan struct{}) (func(), error) {
	w.mu.Lock()
	g := w.gates[db]
	if g == nil {
		g = make(chan struct{}, writersPerDatabase)
		w.gates[db] = g
	}
	w.waiting[db]++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.waiting[db]--; w.waiting[db] == 0 {
			delete(w.waiting, db)
		}
		w.mu.Unlock()
	}()
	select {
	case g <- struct{}{}:
		return func() { <-g }, nil
	case <-abort:
		return nil, errClosing
	}
}

// waiters is how many writes wait for db's gate.
func (w *writeGate) waiters(db string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting[db]
}

// forget drops db's gate; it runs alone (dropDatabase is exclusive), so no
// write holds or waits for it.
func (w *writeGate) forget(db string) {
	w.mu.Lock()
	delete(w.gates, db)
	w.mu.Unlock()
}

// readCommands hold no lane (see above): they read, and write no document.
var readCommands = map[string]bool{
	"find": true, "count": true, "distinct": true, "getMore": true, "killCursors": true,
	"listCollections": true, "listIndexes": true, "listDatabases": true,
	"collStats": true, "dbStats": true, "dataSize": true, "buildInfo": true, "buildinfo": true,
	"getParameter": true, "getCmdLineOpts": true, "connectionStatus": true, "hostInfo": true,
	"whatsmyuri": true, "serverStatus": true, "getLog": true, "explain": true,
	"aggregate": true, // unless it writes ($out, $merge): see classify
}

// classify returns the lanes req needs: exclusive, or the sorted lanes of the
// documents it is pinned to (none for a read).
func classify(req message) (excl bool, keys []string) {
	if req.opCode() != opMsg {
		return true, nil
	}
	secs, err := parseSections(req)
	if err != nil {
		return true, nil
	}
	var body bson.Raw
	seqs := map[string][]bson.Raw{}
	for _, s := range secs {
		if s.kind == 0 {
			if body != nil {
				return true, nil
			}
			body = s.docs[0]
		} else {
			seqs[s.ident] = append(seqs[s.ident], s.docs...)
		}
	}
	if body == nil {
		return true, nil
	}
	first, err := body.IndexErr(0)
	if err != nil {
		return true, nil
	}
	cmd := first.Key()
	coll, _ := first.Value().StringValueOK()
	db, _ := body.Lookup("$db").StringValueOK()
	if _, err := body.LookupErr("collation"); err == nil {
		return true, nil // {_id: "a"} may match "A"
	}
	prefix := db + "\x00" + coll + "\x00"
	// pinned adds filter's document lane; false when it pins none.
	pinned := func(filter bson.RawValue) bool {
		f, ok := filter.DocumentOK()
		if !ok {
			return false
		}
		var id bson.RawValue
		elems, err := f.Elements()
		if err != nil {
			return false
		}
		for _, e := range elems {
			if e.Key() == "_id" {
				if id.Type != 0 {
					return false // twice: which one counts is not clear
				}
				id = e.Value()
			}
		}
		k, ok := idKey(id)
		if !ok {
			return false
		}
		keys = append(keys, prefix+k)
		return true
	}
	// statements returns the statements of an update, delete or insert: in
	// the body or in a document sequence.
	statements := func(ident string) ([]bson.Raw, bool) {
		stmts := seqs[ident]
		if v, err := body.LookupErr(ident); err == nil {
			arr, ok := v.ArrayOK()
			if !ok {
				return nil, false
			}
			vals, err := arr.Values()
			if err != nil {
				return nil, false
			}
			for _, v := range vals {
				d, ok := v.DocumentOK()
				if !ok {
					return nil, false
				}
				stmts = append(stmts, d)
			}
		}
		return stmts, true
	}

	switch cmd {
	case "findAndModify", "findandmodify":
		if !pinned(body.Lookup("query")) {
			return true, nil
		}
	case "update", "delete":
		stmts, ok := statements(cmd + "s")
		if !ok || len(stmts) == 0 {
			return true, nil
		}
		for _, st := range stmts {
			if _, err := st.LookupErr("collation"); err == nil || !pinned(st.Lookup("q")) {
				return true, nil
			}
		}
	case "insert":
		docs, ok := statements("documents")
		if !ok {
			return true, nil
		}
		for _, d := range docs {
			id, err := d.LookupErr("_id")
			if err != nil {
				continue // FerretDB gives it a new ObjectID
			}
			k, ok := idKey(id)
			if !ok {
				return true, nil
			}
			keys = append(keys, prefix+k)
		}
	case "find":
		pinned(body.Lookup("filter")) // the proxy may narrow it
	case "aggregate":
		if writesOut(body) {
			return true, nil
		}
	default:
		if !readCommands[cmd] {
			return true, nil
		}
	}
	slices.Sort(keys)
	return false, slices.Compact(keys)
}

// writesOut reports whether an aggregate's pipeline may write ($out, $merge),
// or cannot be read.
func writesOut(body bson.Raw) bool {
	arr, ok := body.Lookup("pipeline").ArrayOK()
	if !ok {
		return true
	}
	stages, err := arr.Values()
	if err != nil {
		return true
	}
	for _, st := range stages {
		d, ok := st.DocumentOK()
		if !ok {
			return true
		}
		first, err := d.IndexErr(0)
		if err != nil {
			return true
		}
		if k := first.Key(); k == "$out" || k == "$merge" {
			return true
		}
	}
	return false
}

// idKey returns a lane name for an _id value, the same for every two values
// MongoDB's equality match finds equal: a string, ObjectID or number (int32,
// int64 and double compare by value). Other types report false.
func idKey(v bson.RawValue) (string, bool) {
	switch v.Type {
	case bson.TypeString:
		return "s" + v.StringValue(), true
	case bson.TypeObjectID:
		return "o" + string(v.Value), true
	case bson.TypeInt32, bson.TypeInt64:
		return "n" + strconv.FormatInt(v.AsInt64(), 10), true
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) {
			return "", false
		}
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return "n" + strconv.FormatInt(int64(f), 10), true
		}
		return "d" + string(binary.LittleEndian.AppendUint64(nil, math.Float64bits(f))), true
	}
	return "", false
}

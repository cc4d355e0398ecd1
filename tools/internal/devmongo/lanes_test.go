package devmongo

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// waitQueued waits until n requests wait for lanes.
func waitQueued(t *testing.T, l *lanes, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.queue)
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for lanes, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// granted reports whether r holds its lanes now.
func granted(r *lockReq) bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// acquireAsync asks for r's lanes in a goroutine and waits until r holds them
// or waits for them (queued requests then counts it).
func acquireAsync(t *testing.T, l *lanes, r *lockReq, queued int, abort <-chan struct{}) <-chan bool {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- l.acquire(r, abort) }()
	waitQueued(t, l, queued)
	return done
}

func TestLanesGrantInOrderOfConflict(t *testing.T) {
	l := newLanes()
	a := &lockReq{keys: []string{"A"}}
	b := &lockReq{keys: []string{"B"}}
	if !l.acquire(a, nil) || !l.acquire(b, nil) {
		t.Fatal("A and B: want both at once")
	}
	read := &lockReq{}
	if !l.acquire(read, nil) {
		t.Fatal("a read beside A and B: want it at once")
	}

	a2 := &lockReq{keys: []string{"A"}}
	acquireAsync(t, l, a2, 1, nil)
	ex := &lockReq{excl: true}
	acquireAsync(t, l, ex, 2, nil)
	c := &lockReq{keys: []string{"C"}} // C is free, but the exclusive request came first
	acquireAsync(t, l, c, 3, nil)

	l.release(a)
	if !granted(a2) || granted(ex) || granted(c) {
		t.Fatalf("after A's release: A2 %v, exclusive %v, C %v; want true false false", granted(a2), granted(ex), granted(c))
	}
	l.release(b)
	l.release(read)
	if granted(ex) {
		t.Fatal("exclusive granted while A2 holds its lane")
	}
	l.release(a2)
	if !granted(ex) || granted(c) {
		t.Fatalf("after the last shared release: exclusive %v, C %v; want true false", granted(ex), granted(c))
	}
	l.release(ex)
	if !granted(c) {
		t.Fatal("C not granted after the exclusive release")
	}
	l.release(c)
	if l.shared != 0 || l.excl || len(l.held) != 0 || len(l.queue) != 0 {
		t.Fatalf("left: shared %d, excl %v, held %v, queue %d", l.shared, l.excl, l.held, len(l.queue))
	}
}

func TestLanesAbortLetsLaterRequestsGo(t *testing.T) {
	l := newLanes()
	a := &lockReq{keys: []string{"A"}}
	l.acquire(a, nil)
	abort := make(chan struct{})
	ex := &lockReq{excl: true}
	exDone := acquireAsync(t, l, ex, 1, abort)
	b := &lockReq{keys: []string{"B"}}
	acquireAsync(t, l, b, 2, nil)
	close(abort)
	if <-exDone {
		t.Fatal("aborted acquire reported success")
	}
	waitQueued(t, l, 0)
	if !granted(b) {
		t.Fatal("B not granted once the exclusive request ahead of it gave up")
	}
	l.release(a)
	l.release(b)
}

func TestClassify(t *testing.T) {
	oid := bson.NewObjectID()
	ins := func(docs ...any) bson.D {
		return bson.D{{Key: "insert", Value: "c"}, {Key: "documents", Value: bson.A(docs)}, {Key: "$db", Value: "d"}}
	}
	upd := func(q bson.D, extra ...bson.E) bson.D {
		st := append(bson.D{{Key: "q", Value: q}, {Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}}}, extra...)
		return bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{st}}, {Key: "$db", Value: "d"}}
	}
	fam := func(q bson.D) bson.D {
		return bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: q},
			{Key: "update", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}}, {Key: "$db", Value: "d"}}
	}
	const p = "d\x00c\x00"
	for name, tc := range map[string]struct {
		cmd  bson.D
		excl bool
		keys []string
	}{
		"fam by _id and state":   {fam(bson.D{{Key: "_id", Value: "j1"}, {Key: "state", Value: "queued"}}), false, []string{p + "sj1"}},
		"fam by state":           {fam(bson.D{{Key: "state", Value: "queued"}}), true, nil},
		"fam by _id $in":         {fam(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"a", "b"}}}}}), true, nil},
		"fam by _id twice":       {fam(bson.D{{Key: "_id", Value: "a"}, {Key: "_id", Value: "b"}}), true, nil},
		"fam by ObjectID":        {fam(bson.D{{Key: "_id", Value: oid}}), false, []string{p + "o" + string(oid[:])}},
		"fam by int and $or":     {fam(bson.D{{Key: "_id", Value: int32(7)}, {Key: "$or", Value: bson.A{bson.D{{Key: "a", Value: 1}}}}}), false, []string{p + "n7"}},
		"update upsert by _id":   {upd(bson.D{{Key: "_id", Value: "j1"}}, bson.E{Key: "upsert", Value: true}), false, []string{p + "sj1"}},
		"update many by state":   {upd(bson.D{{Key: "state", Value: "queued"}}, bson.E{Key: "multi", Value: true}), true, nil},
		"update with collation":  {upd(bson.D{{Key: "_id", Value: "j1"}}, bson.E{Key: "collation", Value: bson.D{{Key: "locale", Value: "en"}}}), true, nil},
		"insert two":             {ins(bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "_id", Value: "a"}}), false, []string{p + "sa", p + "sb"}},
		"insert without _id":     {ins(bson.D{{Key: "x", Value: 1}}), false, nil},
		"insert document _id":    {ins(bson.D{{Key: "_id", Value: bson.D{{Key: "k", Value: 1}}}}), true, nil},
		"delete by _id":          {bson.D{{Key: "delete", Value: "c"}, {Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "x"}}}, {Key: "limit", Value: 1}}}}, {Key: "$db", Value: "d"}}, false, []string{p + "sx"}},
		"delete by filter":       {bson.D{{Key: "delete", Value: "c"}, {Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "limit", Value: 0}}}}, {Key: "$db", Value: "d"}}, true, nil},
		"find by _id":            {bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: "x"}, {Key: "s", Value: 1}}}, {Key: "$db", Value: "d"}}, false, []string{p + "sx"}},
		"find by state":          {bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "s", Value: 1}}}, {Key: "$db", Value: "d"}}, false, nil},
		"count":                  {bson.D{{Key: "count", Value: "c"}, {Key: "$db", Value: "d"}}, false, nil},
		"aggregate":              {bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$match", Value: bson.D{}}}}}, {Key: "cursor", Value: bson.D{}}, {Key: "$db", Value: "d"}}, false, nil},
		"aggregate $out":         {bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$out", Value: "o"}}}}, {Key: "cursor", Value: bson.D{}}, {Key: "$db", Value: "d"}}, true, nil},
		"createIndexes":          {bson.D{{Key: "createIndexes", Value: "c"}, {Key: "indexes", Value: bson.A{}}, {Key: "$db", Value: "d"}}, true, nil},
		"dropDatabase":           {bson.D{{Key: "dropDatabase", Value: 1}, {Key: "$db", Value: "d"}}, true, nil},
		"unknown command":        {bson.D{{Key: "frobnicate", Value: "c"}, {Key: "$db", Value: "d"}}, true, nil},
		"double _id equals int":  {fam(bson.D{{Key: "_id", Value: 7.0}}), false, []string{p + "n7"}},
		"double _id with a part": {fam(bson.D{{Key: "_id", Value: 7.5}}), false, []string{p + "d" + string([]byte{0, 0, 0, 0, 0, 0, 0x1e, 0x40})}},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := newOpMsg(1, 0, tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			excl, keys := classify(m)
			if excl != tc.excl || !slices.Equal(keys, tc.keys) {
				t.Errorf("classify = %v %q, want %v %q", excl, keys, tc.excl, tc.keys)
			}
		})
	}

	// A document sequence (kind 1), as drivers send inserts and updates.
	m := buildOpMsg(1, 0, []section{
		{kind: 0, docs: []bson.Raw{raw(t, bson.D{{Key: "insert", Value: "c"}, {Key: "$db", Value: "d"}})}},
		{kind: 1, ident: "documents", docs: []bson.Raw{raw(t, bson.D{{Key: "_id", Value: "z"}}), raw(t, bson.D{{Key: "_id", Value: "y"}})}},
	})
	if excl, keys := classify(m); excl || !slices.Equal(keys, []string{p + "sy", p + "sz"}) {
		t.Errorf("insert with a document sequence: %v %q", excl, keys)
	}
}

// laneOf is the lane of document id in db.coll.
func laneOf(t *testing.T, db, coll string, id any) string {
	t.Helper()
	typ, data, err := bson.MarshalValue(id)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := idKey(bson.RawValue{Type: typ, Value: data})
	if !ok {
		t.Fatalf("no lane for %v", id)
	}
	return db + "\x00" + coll + "\x00" + k
}

// TestUnrelatedDocumentsDoNotWait holds document A's lane, as a slow command
// on A would: a race on document B still finds its one winner, and a read
// answers, while a command on A waits; a many-document update then queues
// behind A's, and a command on document C queues behind it. Released, they
// run in that order, as the documents show.
func TestUnrelatedDocumentsDoNotWait(t *testing.T) {
	s := startServer(t)
	const racers = 8
	client := connect(t, s.URI(), options.Client().SetMaxPoolSize(2*racers))
	coll := client.Database("lanes").Collection("jobs")
	ctx := t.Context()
	if _, err := coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "A"}, {Key: "state", Value: "queued"}},
		bson.D{{Key: "_id", Value: "C"}, {Key: "state", Value: "queued"}},
	}); err != nil {
		t.Fatal(err)
	}

	holdA := &lockReq{keys: []string{laneOf(t, "lanes", "jobs", "A")}}
	if !s.lanes.acquire(holdA, nil) {
		t.Fatal("acquire failed")
	}
	released := false
	defer func() {
		if !released {
			s.lanes.release(holdA)
		}
	}()

	// B, inserted and raced for while A is held.
	winners := raceFindOneAndUpdate(t, coll, 1, racers, func(int) any { return "B" })
	if winners[0] != 1 {
		t.Fatalf("B: %d winners, want 1", winners[0])
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "state", Value: "queued"}}); err != nil || n != 2 {
		t.Fatalf("count while A is held: %d, %v; want 2 (A and C)", n, err)
	}

	type result struct {
		doc bson.M
		err error
	}
	onA := make(chan result, 1)
	go func() {
		var d bson.M
		err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "A"}, {Key: "state", Value: "queued"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
		onA <- result{d, err}
	}()
	waitQueued(t, s.lanes, 1)
	many := make(chan error, 1)
	go func() {
		_, err := coll.UpdateMany(ctx, bson.D{{Key: "state", Value: "queued"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "swept", Value: 1}}}})
		many <- err
	}()
	waitQueued(t, s.lanes, 2)
	onC := make(chan result, 1)
	go func() {
		var d bson.M
		err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "C"}, {Key: "state", Value: "queued"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
		onC <- result{d, err}
	}()
	waitQueued(t, s.lanes, 3)

	released = true
	s.lanes.release(holdA)
	a, err, c := <-onA, <-many, <-onC
	if a.err != nil || err != nil || c.err != nil {
		t.Fatalf("A: %v, many: %v, C: %v", a.err, err, c.err)
	}
	// A ran before the sweep (it was running, so not swept); C after it.
	if _, swept := a.doc["swept"]; swept || a.doc["state"] != "running" {
		t.Errorf("A after its update: %v; want running, not swept", a.doc)
	}
	if c.doc["swept"] != int32(1) || c.doc["state"] != "running" {
		t.Errorf("C after its update: %v; want swept once, running", c.doc)
	}
	var final bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "A"}}).Decode(&final); err != nil || final["swept"] != nil {
		t.Errorf("A at the end: %v, %v; want it never swept", final, err)
	}
}

// TestWriteGateOrdersWritesPerDatabase fills the gate of one database, as
// writes FerretDB is executing there would: a pinned update there waits (after
// the proxy's probe), while a read of the same collection and a pinned update
// in another database go through.
func TestWriteGateOrdersWritesPerDatabase(t *testing.T) {
	s := startServer(t)
	client := connect(t, s.URI(), nil)
	ctx := t.Context()
	jobs, other := client.Database("gated").Collection("jobs"), client.Database("ungated").Collection("jobs")
	for _, c := range []*mongo.Collection{jobs, other} {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "j"}, {Key: "state", Value: "queued"}}); err != nil {
			t.Fatal(err)
		}
	}
	var leaves []func()
	for range writersPerDatabase {
		leave, err := s.writes.enter("gated", nil)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leave)
	}
	leave := func() {
		for _, l := range leaves {
			l()
		}
	}
	left := false
	defer func() {
		if !left {
			leave()
		}
	}()
	done := make(chan error, 1)
	go func() {
		done <- jobs.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "j"}, {Key: "state", Value: "queued"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}}).Err()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for s.writes.waiters("gated") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the update never reached the gate")
		}
		time.Sleep(time.Millisecond)
	}
	if n, err := jobs.CountDocuments(ctx, bson.D{{Key: "state", Value: "queued"}}); err != nil || n != 1 {
		t.Fatalf("read beside the gated write: %d, %v", n, err)
	}
	if err := other.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "j"}, {Key: "state", Value: "queued"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}}).Err(); err != nil {
		t.Fatalf("write to another database: %v", err)
	}
	left = true
	leave()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentUpdatesOfManyDocuments: goroutines each move their own
// documents through conditional updates while others do the same: every
// update must succeed (no SQLite busy error reaches a client) and each
// document must end where its owner left it.
func TestConcurrentUpdatesOfManyDocuments(t *testing.T) {
	workers, perWorker := 16, 15
	if raceEnabled {
		workers, perWorker = 8, 5
	}
	s := startServer(t)
	client := connect(t, s.URI(), options.Client().SetMaxPoolSize(uint64(workers)))
	coll := client.Database("lanes").Collection("many")
	ctx := t.Context()
	var docs []any
	for w := range workers {
		for i := range perWorker {
			docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("w%02d-%02d", w, i)}, {Key: "step", Value: 0}})
		}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	before := s.exclusive.Load()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range workers {
		wg.Go(func() {
			for step := range 3 {
				for i := range perWorker {
					id := fmt.Sprintf("w%02d-%02d", w, i)
					err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}, {Key: "step", Value: step}},
						bson.D{{Key: "$set", Value: bson.D{{Key: "step", Value: step + 1}}}}).Err()
					if err != nil {
						failed.Add(1)
						t.Errorf("%s step %d: %v", id, step, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "step", Value: 3}}); err != nil || n != int64(workers*perWorker) {
		t.Errorf("%d documents at step 3 (%v), want %d", n, err, workers*perWorker)
	}
	if n := s.exclusive.Load() - before; n != 0 {
		t.Errorf("%d of the pinned updates ran exclusive, want none", n)
	}
}

// TestDropDatabaseRemovesItsFiles: FerretDB removes a dropped database's file,
// but SQLite leaves its WAL and WAL index when a connection other than
// FerretDB's has the file open at the drop: the proxy's own handle did, and
// 1 GB of WALs piled up in .aigw/ferretdb. Nothing of the database may stay
// (also with a client's cursor open on it), and a new database of the same
// name starts empty.
func TestDropDatabaseRemovesItsFiles(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	client := connect(t, s.URI(), nil)
	db := client.Database("dropme")
	var docs []any
	for i := range 200 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}, {Key: "pad", Value: strings.Repeat("x", 1000)}})
	}
	if _, err := db.Collection("c").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	files := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(s.ids.dir, "dropme.sqlite*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if len(files()) == 0 {
		t.Fatal("no database files before the drop")
	}

	reader := connect(t, s.URI(), nil)
	cur, err := reader.Database("dropme").Collection("c").Find(ctx, bson.D{}, options.Find().SetBatchSize(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	if !cur.Next(ctx) {
		t.Fatal(cur.Err())
	}

	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := files(); len(left) != 0 {
		t.Fatalf("left after dropDatabase: %v", left)
	}

	if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "new"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("new database of the same name: %d documents (%v), want 1", n, err)
	}
	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := files(); len(left) != 0 {
		t.Fatalf("left after the second dropDatabase: %v", left)
	}
}

func TestRemoveOrphans(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gone.sqlite-wal", 1000)
	write("gone.sqlite-shm", 100)
	write("kept.sqlite", 10)
	write("kept.sqlite-wal", 10)
	write("other.txt", 10)
	if n := removeOrphans(dir, slog.New(slog.NewTextHandler(testWriter{t}, nil))); n != 1100 {
		t.Errorf("freed %d bytes, want 1100", n)
	}
	var left []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"kept.sqlite", "kept.sqlite-wal", "other.txt"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone.sqlite")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gone.sqlite: %v", err)
	}
}

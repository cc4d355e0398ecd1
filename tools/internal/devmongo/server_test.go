package devmongo

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startServer starts a Server on a random loopback port over a temporary data
// directory; it is closed when the test ends.
func startServer(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{
		Addr:    "127.0.0.1:0",
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := s.Close(); err != nil { // a second Close is harmless
			t.Errorf("second Close: %v", err)
		}
	})
	return s
}

// connect returns a driver client of uri, disconnected when the test ends.
func connect(t testing.TB, uri string, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetDirect(true).SetTimeout(60*time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// intID numbers documents 0, 1, 2...: FerretDB pushes no filter on such an
// _id down, and the proxy narrows none (see narrow.go).
func intID(i int) any { return i }

// raceFindOneAndUpdate makes racers goroutines race
// findOneAndUpdate({_id, state: "queued"}, {$set: {state: "running"}}) on each
// of docs documents (_id id(0), id(1)...) in turn, and returns how many won each race.
func raceFindOneAndUpdate(t *testing.T, coll *mongo.Collection, docs, racers int, id func(int) any) []int {
	t.Helper()
	ctx := t.Context()
	batch := make([]any, docs)
	for i := range batch {
		batch[i] = bson.D{{Key: "_id", Value: id(i)}, {Key: "state", Value: "queued"}}
	}
	if _, err := coll.InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}

	// Open every connection of the pool before racing.
	var warm sync.WaitGroup
	for range racers {
		warm.Go(func() {
			if err := coll.Database().Client().Ping(ctx, nil); err != nil {
				t.Error(err)
			}
		})
	}
	warm.Wait()

	winners := make([]int, docs)
	for i := range docs {
		var (
			wg   sync.WaitGroup
			won  atomic.Int32
			gate = make(chan struct{})
		)
		for r := range racers {
			wg.Go(func() {
				<-gate
				err := coll.FindOneAndUpdate(ctx,
					bson.D{{Key: "_id", Value: id(i)}, {Key: "state", Value: "queued"}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}, {Key: "winner", Value: r}}}},
				).Err()
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, mongo.ErrNoDocuments):
				default:
					t.Errorf("doc %d, racer %d: %v", i, r, err)
				}
			})
		}
		close(gate)
		wg.Wait()
		winners[i] = int(won.Load())
	}
	return winners
}

// TestFindOneAndUpdateHasOneWinner proves the server linearizable where
// FerretDB alone is not: 16 goroutines race a conditional update on the same
// document, 100 times (30 under the race detector, where one
// FindOneAndUpdate costs about 20 ms instead of 3; FerretDB alone shows
// several winners on most of 30 documents); exactly one must win every time.
func TestFindOneAndUpdateHasOneWinner(t *testing.T) {
	const racers = 16
	docs := 100
	if raceEnabled {
		docs = 30
	}
	s := startServer(t)
	client := connect(t, s.URI(), options.Client().SetMaxPoolSize(racers))
	coll := client.Database("linearizable").Collection("jobs")

	start := time.Now()
	winners := raceFindOneAndUpdate(t, coll, docs, racers, intID)
	elapsed := time.Since(start)
	for i, w := range winners {
		if w != 1 {
			t.Errorf("doc %d: %d winners, want exactly 1", i, w)
		}
	}
	t.Logf("%d racers x %d docs: %d FindOneAndUpdate in %s (%.0f/s)",
		racers, docs, racers*docs, elapsed.Round(time.Millisecond), float64(racers*docs)/elapsed.Seconds())

	n, err := coll.CountDocuments(t.Context(), bson.D{{Key: "state", Value: "running"}})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(docs) {
		t.Errorf("%d documents running, want %d", n, docs)
	}
}

// TestFerretDBAloneIsNotLinearizable is the control experiment: the same race
// straight against FerretDB's socket, bypassing the proxy, finds several
// winners. It shows the test above can fail; it is opt-in because FerretDB's
// race is timing-dependent.
func TestFerretDBAloneIsNotLinearizable(t *testing.T) {
	if os.Getenv("AIGW_DEVMONGO_CONTROL") == "" {
		t.Skip("set AIGW_DEVMONGO_CONTROL=1 to race FerretDB without the proxy")
	}
	const docs, racers = 30, 16
	s := startServer(t)
	client := connect(t, "mongodb://"+url.PathEscape(s.sockPath)+"/", options.Client().SetMaxPoolSize(racers))
	winners := raceFindOneAndUpdate(t, client.Database("control").Collection("jobs"), docs, racers, intID)
	several := 0
	for _, w := range winners {
		if w > 1 {
			several++
		}
	}
	t.Logf("without the proxy: several winners on %d of %d documents (%v)", several, docs, winners)
	if several == 0 {
		t.Error("FerretDB alone had one winner every time; the control found no race")
	}
}

// rawConn is a client connection that speaks the wire protocol by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(m message) {
	r.t.Helper()
	if _, err := r.c.Write(m); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) sendMsg(id int32, flags uint32, doc bson.D) {
	r.t.Helper()
	m, err := newOpMsg(id, flags, doc)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(m)
}

// reply reads the next reply, checks it answers request id, and returns its body.
func (r *rawConn) reply(id int32) bson.Raw {
	r.t.Helper()
	m, err := readMessage(r.br)
	if err != nil {
		r.t.Fatalf("reading the reply to %d: %v", id, err)
	}
	if m.responseTo() != id {
		r.t.Fatalf("got a reply to request %d, want one to %d", m.responseTo(), id)
	}
	doc, err := opMsgBody(m)
	if err != nil {
		r.t.Fatal(err)
	}
	if ok, _ := doc.Lookup("ok").AsFloat64OK(); ok != 1 {
		r.t.Fatalf("reply to %d not ok: %s", id, doc)
	}
	return doc
}

// expectNothing checks that no further bytes arrive within d.
func (r *rawConn) expectNothing(d time.Duration) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = r.c.SetDeadline(time.Now().Add(30 * time.Second)) }()
	if b, err := r.br.ReadByte(); err == nil {
		r.t.Fatalf("unexpected byte %#x after the last reply", b)
	} else if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		r.t.Fatalf("connection failed: %v", err)
	}
}

// TestMoreToComeRequestGetsNoReply sends an insert with moreToCome (a w:0
// write) and then a find: the client must see no reply to the insert (FerretDB
// answers it anyway; the proxy drops that), the find's reply next, and the
// inserted document in it.
func TestMoreToComeRequestGetsNoReply(t *testing.T) {
	s := startServer(t)
	r := dialRaw(t, s)

	r.sendMsg(10, flagMoreToCome, bson.D{
		{Key: "insert", Value: "c"},
		{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "fire-and-forget"}}}},
		{Key: "$db", Value: "wire"},
	})
	r.expectNothing(200 * time.Millisecond)

	r.sendMsg(11, 0, bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "$db", Value: "wire"}})
	doc := r.reply(11)
	batch, ok := doc.Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		t.Fatalf("no cursor.firstBatch in %s", doc)
	}
	if vals, _ := batch.Values(); len(vals) != 1 {
		t.Fatalf("find returned %d documents, want 1: %s", len(vals), doc)
	}
	r.expectNothing(100 * time.Millisecond)
}

// TestUnacknowledgedWritesWithDriver does the same through the driver: w:0
// inserts on one connection, then an acknowledged count that sees them all.
func TestUnacknowledgedWritesWithDriver(t *testing.T) {
	s := startServer(t)
	client := connect(t, s.URI(), options.Client().SetMaxPoolSize(1).SetWriteConcern(writeconcern.Unacknowledged()))
	coll := client.Database("wire").Collection("w0")
	const n = 20
	for i := range n {
		if _, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := coll.CountDocuments(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("counted %d documents, want %d", got, n)
	}
}

// TestLegacyOpQueryHello sends the OP_QUERY isMaster drivers open with: one
// OP_REPLY comes back, then OP_MSG works on the same connection.
func TestLegacyOpQueryHello(t *testing.T) {
	s := startServer(t)
	r := dialRaw(t, s)

	query, err := bson.Marshal(bson.D{{Key: "isMaster", Value: 1}, {Key: "helloOk", Value: true}})
	if err != nil {
		t.Fatal(err)
	}
	m := make(message, 16, 64+len(query))
	m = binary.LittleEndian.AppendUint32(m, 0) // flags
	m = append(m, "admin.$cmd\x00"...)
	m = binary.LittleEndian.AppendUint32(m, 0)                  // numberToSkip
	m = binary.LittleEndian.AppendUint32(m, uint32(0xffffffff)) // numberToReturn: -1
	m = append(m, query...)
	binary.LittleEndian.PutUint32(m[0:], uint32(len(m)))
	binary.LittleEndian.PutUint32(m[4:], 7)
	binary.LittleEndian.PutUint32(m[12:], uint32(opQuery))
	r.send(m)

	rep, err := readMessage(r.br)
	if err != nil {
		t.Fatal(err)
	}
	if rep.opCode() != opReply || rep.responseTo() != 7 {
		t.Fatalf("got opcode %d in reply to %d, want OP_REPLY to 7", rep.opCode(), rep.responseTo())
	}
	// OP_REPLY: flags, cursorID (8), startingFrom, numberReturned, documents.
	doc := bson.Raw(rep[headerLen+20:])
	if err := doc.Validate(); err != nil {
		t.Fatal(err)
	}
	if primary, _ := doc.Lookup("ismaster").BooleanOK(); !primary {
		t.Fatalf("isMaster reply: %s", doc)
	}

	r.sendMsg(8, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	r.reply(8)
	r.expectNothing(100 * time.Millisecond)
}

// TestBadFramingClosesTheConnection: a message length below the header size,
// or an opcode the proxy does not forward, ends the connection, not the server.
func TestBadFramingClosesTheConnection(t *testing.T) {
	s := startServer(t)
	for name, m := range map[string]message{
		"short length":  {4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0},
		"op_compressed": binary.LittleEndian.AppendUint32([]byte{20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdc, 7, 0, 0}, 0),
	} {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, s)
			r.send(m)
			if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("read after a bad message: %v, want EOF", err)
			}
		})
	}
	r := dialRaw(t, s) // the server still serves
	r.sendMsg(1, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	r.reply(1)
}

// TestCloseWithOpenConnections: Close ends idle client connections.
func TestCloseWithOpenConnections(t *testing.T) {
	s := startServer(t)
	r := dialRaw(t, s)
	r.sendMsg(1, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	r.reply(1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.br.ReadByte(); err == nil {
		t.Fatal("connection still open after Close")
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if _, err := os.Stat(s.sockDir); !os.IsNotExist(err) {
		t.Fatalf("socket directory left behind: %v", err)
	}
}

// TestExclusiveLeavesDataFreeCommands holds every lane: a ping still answers,
// but a find waits until the lanes are free.
func TestExclusiveLeavesDataFreeCommands(t *testing.T) {
	s := startServer(t)
	r := dialRaw(t, s)

	hold := &lockReq{excl: true} // as if another client's exclusive command were running
	if !s.lanes.acquire(hold, nil) {
		t.Fatal("acquire failed")
	}
	r.sendMsg(1, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	r.reply(1)

	r.sendMsg(2, 0, bson.D{{Key: "find", Value: "c"}, {Key: "$db", Value: "turn"}})
	waitQueued(t, s.lanes, 1)
	s.lanes.release(hold)
	r.reply(2)
}

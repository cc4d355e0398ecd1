package devmongo

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mixedDocs are documents whose indexed fields hold every kind of value the
// mirrors and the evaluator must get right: strings, numbers of each type,
// bools, dates, ObjectIDs, nulls, missing fields, arrays (empty, of scalars, of
// documents, nested), embedded documents.
func mixedDocs(rng *rand.Rand, n int) []any {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	oid := func(i int) bson.ObjectID {
		var o bson.ObjectID
		o[11] = byte(i)
		o[0] = 0x65
		return o
	}
	value := func() any {
		switch rng.IntN(16) {
		case 0:
			return nil
		case 1, 2, 3:
			return []string{"p0", "p1", "p2", "queued", "running"}[rng.IntN(5)]
		case 4:
			return int32(rng.IntN(4))
		case 5:
			return int64(rng.IntN(4))
		case 6:
			return float64(rng.IntN(4)) + []float64{0, 0.5}[rng.IntN(2)]
		case 7:
			return rng.IntN(2) == 0
		case 8:
			return t0.Add(time.Duration(rng.IntN(4)) * time.Hour)
		case 9:
			return oid(rng.IntN(3))
		case 10:
			return bson.A{}
		case 11:
			return bson.A{"p1", int32(2)}
		case 12:
			return bson.A{bson.D{{Key: "at", Value: t0.Add(time.Hour)}}, bson.D{{Key: "x", Value: 1}}}
		case 13:
			return bson.D{{Key: "at", Value: t0.Add(2 * time.Hour)}}
		case 14:
			return bson.A{nil, "p2", bson.D{{Key: "at", Value: nil}}}
		}
		return "" // 15: the field is left out below
	}
	docs := make([]any, n)
	for i := range n {
		d := bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}}
		for _, f := range []string{"pool", "state", "at", "box"} {
			if v := value(); v != "" {
				d = append(d, bson.E{Key: f, Value: v})
			}
		}
		docs[i] = d
	}
	return docs
}

// indexedFilters are the filters the differential test runs, on fields that
// lead a mirrored index (pool, box.at, state) and on others.
func indexedFilters() []bson.D {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []bson.D
	operands := []any{"p1", "queued", int32(2), int64(1), 2.0, 0.5, true, false, t0.Add(time.Hour), nil, bson.ObjectID{0x65}}
	for _, v := range operands {
		out = append(out,
			bson.D{{Key: "pool", Value: v}},
			bson.D{{Key: "pool", Value: bson.D{{Key: "$eq", Value: v}}}, {Key: "state", Value: bson.D{{Key: "$ne", Value: "queued"}}}},
			bson.D{{Key: "pool", Value: "p1"}, {Key: "state", Value: v}},
		)
		if v != nil {
			for _, op := range []string{"$lt", "$lte", "$gt", "$gte"} {
				out = append(out,
					bson.D{{Key: "pool", Value: bson.D{{Key: op, Value: v}}}},
					bson.D{{Key: "box.at", Value: bson.D{{Key: op, Value: v}}}},
				)
			}
		}
	}
	out = append(out,
		bson.D{{Key: "pool", Value: bson.D{{Key: "$in", Value: bson.A{"p1", int32(2), true}}}}},
		bson.D{{Key: "pool", Value: bson.D{{Key: "$in", Value: bson.A{}}}}},
		bson.D{{Key: "pool", Value: bson.D{{Key: "$in", Value: bson.A{"p0", nil}}}}},
		bson.D{{Key: "pool", Value: "p0"}, {Key: "state", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "pool", Value: "p0"}, {Key: "box", Value: bson.D{{Key: "$exists", Value: true}}}},
		bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"queued", "running"}}}}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: "d100"}}}},
		bson.D{{Key: "box.at", Value: bson.D{{Key: "$type", Value: "date"}}}},
		bson.D{{Key: "box.at", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "pool", Value: "p2"}},
		bson.D{{Key: "pool", Value: bson.D{{Key: "$type", Value: "string"}}}},
		bson.D{{Key: "pool", Value: bson.D{{Key: "$type", Value: "objectId"}}}, {Key: "state", Value: "p1"}},
		bson.D{{Key: "pool", Value: "p2"}, {Key: "at", Value: bson.D{{Key: "$gte", Value: t0.Add(time.Hour)}}}},
		bson.D{{Key: "at", Value: "p1"}}, // no mirrored index: FerretDB
	)
	return out
}

// TestIndexedQueriesAnswerLikeFerretDB runs finds (with sorts, skips and
// limits) and aggregates ($match, $match + $group) through the proxy and
// straight against FerretDB on the same mixed data, and wants the same answer.
func TestIndexedQueriesAnswerLikeFerretDB(t *testing.T) {
	s := startServer(t)
	proxied := connect(t, s.URI(), nil).Database("ix")
	direct := connect(t, "mongodb://"+url.PathEscape(s.sockPath)+"/", nil).Database("ix")
	ctx := t.Context()
	coll := proxied.Collection("c")
	if _, err := coll.InsertMany(ctx, mixedDocs(rand.New(rand.NewPCG(1, 2)), 150)); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("pool_state_id")},
		{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("state_id")},
		{Keys: bson.D{{Key: "box.at", Value: 1}}, Options: options.Index().SetName("box_at")},
	}); err != nil {
		t.Fatal(err)
	}

	type result struct {
		Docs []bson.M
		Err  string
	}
	run := func(db *mongo.Database, cmd bson.D) result {
		var reply struct {
			Cursor struct {
				ID         int64    `bson:"id"`
				NS         string   `bson:"ns"`
				FirstBatch []bson.M `bson:"firstBatch"`
			} `bson:"cursor"`
		}
		if err := db.RunCommand(ctx, cmd).Decode(&reply); err != nil {
			return result{Err: err.Error()}
		}
		if reply.Cursor.ID != 0 || reply.Cursor.NS != "ix.c" {
			t.Fatalf("%v: cursor %d of %q", cmd, reply.Cursor.ID, reply.Cursor.NS)
		}
		return result{Docs: reply.Cursor.FirstBatch}
	}
	byID := func(docs []bson.M) {
		slices.SortFunc(docs, func(a, b bson.M) int { return strings.Compare(fmt.Sprint(a["_id"]), fmt.Sprint(b["_id"])) })
	}

	served := 0
	for i, f := range indexedFilters() {
		cmds := map[string]bson.D{
			"find":          {{Key: "find", Value: "c"}, {Key: "filter", Value: f}},
			"find sorted":   {{Key: "find", Value: "c"}, {Key: "filter", Value: f}, {Key: "sort", Value: bson.D{{Key: "_id", Value: -1}}}, {Key: "skip", Value: 1}, {Key: "limit", Value: 5}},
			"find by state": {{Key: "find", Value: "c"}, {Key: "filter", Value: f}, {Key: "sort", Value: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}}, {Key: "limit", Value: 20}},
			"aggregate":     {{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$match", Value: f}}, bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$state"}}}}}}, {Key: "cursor", Value: bson.D{}}},
		}
		for name, cmd := range cmds {
			before := s.indexed.Load()
			got := run(proxied, cmd)
			served += int(s.indexed.Load() - before)
			want := run(direct, cmd)
			if name == "find" || strings.HasPrefix(name, "aggregate") {
				byID(got.Docs) // the order is unspecified
				byID(want.Docs)
			}
			if name == "find by state" {
				// Ties on state: compare the state order only, and the set.
				states := func(docs []bson.M) []any {
					var out []any
					for _, d := range docs {
						out = append(out, d["state"])
					}
					return out
				}
				if !reflect.DeepEqual(states(got.Docs), states(want.Docs)) {
					t.Errorf("filter %d %v, %s: states\n %v\nstraight from FerretDB:\n %v", i, f, name, states(got.Docs), states(want.Docs))
				}
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("filter %d %v, %s: through the proxy\n %v\nstraight from FerretDB:\n %v", i, f, name, got, want)
			}
		}
	}
	if total := len(indexedFilters()) * 4; served < total/2 {
		t.Errorf("the mirrored indexes served %d of %d queries", served, total)
	}
	t.Logf("the mirrored indexes served %d of %d queries", served, len(indexedFilters())*4)
}

// TestIndexedQueryAfterWrites: the mirrors follow inserts, updates, deletes and
// index changes, and the jobstore-shaped queries are served by them.
func TestIndexedQueryAfterWrites(t *testing.T) {
	s := startServer(t)
	coll := connect(t, s.URI(), nil).Database("ix").Collection("jobs")
	ctx := t.Context()
	ids := func(filter bson.D, opts ...options.Lister[options.FindOptions]) []string {
		t.Helper()
		cur, err := coll.Find(ctx, filter, opts...)
		if err != nil {
			t.Fatal(err)
		}
		var docs []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, d := range docs {
			out = append(out, d.ID)
		}
		return out
	}
	for i := range 50 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("j%02d", i)}, {Key: "pool", Value: "p"}, {Key: "state", Value: "succeeded"}}); err != nil {
			t.Fatal(err)
		}
	}
	queued := bson.D{{Key: "pool", Value: "p"}, {Key: "state", Value: "queued"}}
	if got := ids(queued); len(got) != 0 {
		t.Fatalf("before the index: %v", got)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}}, Options: options.Index().SetName("pool_state")}); err != nil {
		t.Fatal(err)
	}
	before := s.indexed.Load()
	if got := ids(queued); len(got) != 0 {
		t.Fatalf("no queued jobs: %v", got)
	}
	if s.indexed.Load() == before {
		t.Fatal("the query was not served by the mirrored index")
	}
	for _, id := range []string{"j07", "j03", "j42"} {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "queued"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	sorted := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if got, want := ids(queued, sorted), []string{"j03", "j07", "j42"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queued: %v, want %v", got, want)
	}
	if got, want := ids(queued, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(2)), []string{"j42", "j07"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queued, last two: %v, want %v", got, want)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "j07"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(queued, sorted), []string{"j03", "j42"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a delete: %v, want %v", got, want)
	}
	if err := coll.Indexes().DropOne(ctx, "pool_state"); err != nil {
		t.Fatal(err)
	}
	before = s.indexed.Load()
	if got, want := ids(queued, sorted), []string{"j03", "j42"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after dropping the index: %v, want %v", got, want)
	}
	if s.indexed.Load() != before {
		t.Fatal("a query was served by the mirror of a dropped index")
	}
	if n := mirrorCount(t, s, "ix", "jobs"); n != 0 {
		t.Fatalf("%d mirrored indexes left after dropping the index", n)
	}
}

// mirrorCount counts the collection's mirrored indexes in its database file.
func mirrorCount(t *testing.T, s *Server, db, coll string) int {
	t.Helper()
	h := openRO(t, s, db)
	var n int
	if err := h.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '_ferretdb_aigw_mx_%' AND tbl_name =
		(SELECT table_name FROM _ferretdb_collections WHERE name = ?)`, coll).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func openRO(t *testing.T, s *Server, db string) *sql.DB {
	t.Helper()
	h, err := sql.Open("sqlite", "file:"+filepath.Join(s.ids.dir, db+".sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestCandidateQueriesUseTheMirrors: SQLite answers the candidate queries of
// the orchestrator's scans from a mirrored index, never by scanning the table.
func TestCandidateQueriesUseTheMirrors(t *testing.T) {
	s := startServer(t)
	coll := connect(t, s.URI(), nil).Database("ix").Collection("jobs")
	ctx := t.Context()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "pool", Value: "p"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("pool_state_id")},
		{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}, {Key: "expires_at", Value: 1}}, Options: options.Index().SetName("pool_state_expires_at")},
		{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("state_id")},
		{Keys: bson.D{{Key: "outbox.at", Value: 1}}, Options: options.Index().SetName("outbox_at")},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, f := range []bson.D{
		{{Key: "state", Value: "queued"}},
		{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"queued", "running"}}}}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: "x"}}}},
		{{Key: "pool", Value: "p"}, {Key: "state", Value: "queued"}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: "x"}}}, {Key: "queued_at", Value: bson.D{{Key: "$lt", Value: now}}}},
		{{Key: "pool", Value: "p"}, {Key: "state", Value: "queued"}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}},
		{{Key: "outbox.at", Value: bson.D{{Key: "$type", Value: "date"}}}},
	} {
		preds, ok := parsePreds(raw(t, f))
		if !ok {
			t.Fatalf("%v: not in the subset", f)
		}
		info, _ := s.ids.collection("ix", "jobs")
		if info == nil {
			t.Fatal("no mirrors for ix.jobs")
		}
		q, args, ok := candidateSQL(info, preds)
		if !ok {
			t.Fatalf("%v: no candidate query", f)
		}
		rows, err := openRO(t, s, "ix").Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		_ = rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "INDEX "+mirrorPrefix) || strings.Contains(p, "SCAN "+info.table+" ") || strings.HasSuffix(p, "SCAN "+info.table) {
			t.Errorf("%v: plan %q does not use a mirrored index", f, p)
		}
	}
}

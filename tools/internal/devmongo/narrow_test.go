package devmongo

import (
	"database/sql"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func raw(t *testing.T, d any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFilter(t *testing.T) {
	for name, tc := range map[string]struct {
		filter bson.D
		ok     bool
		conds  int
	}{
		"id and state":       {bson.D{{Key: "_id", Value: "j1"}, {Key: "state", Value: "queued"}}, true, 1},
		"state before id":    {bson.D{{Key: "state", Value: "queued"}, {Key: "_id", Value: "j1"}}, true, 1},
		"id state attempt":   {bson.D{{Key: "_id", Value: "j1"}, {Key: "state", Value: "queued"}, {Key: "attempt", Value: 2}}, true, 2},
		"objectid":           {bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "claim", Value: ""}}, true, 1},
		"exists false":       {bson.D{{Key: "_id", Value: "c"}, {Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}}}, true, 1},
		"in ne eq":           {bson.D{{Key: "_id", Value: "c"}, {Key: "s", Value: bson.D{{Key: "$in", Value: bson.A{"a", 1, nil}}, {Key: "$ne", Value: "b"}}}, {Key: "t", Value: bson.D{{Key: "$eq", Value: true}}}}, true, 3},
		"null, double, date": {bson.D{{Key: "_id", Value: "c"}, {Key: "a", Value: nil}, {Key: "b", Value: 1.5}, {Key: "c", Value: time.Unix(1, 0)}}, true, 3},
		"id alone":           {bson.D{{Key: "_id", Value: "j1"}}, false, 0},
		"no id":              {bson.D{{Key: "state", Value: "queued"}}, false, 0},
		"int id":             {bson.D{{Key: "_id", Value: 1}, {Key: "state", Value: "queued"}}, false, 0},
		"id operator":        {bson.D{{Key: "_id", Value: bson.D{{Key: "$eq", Value: "j1"}}}, {Key: "state", Value: "queued"}}, false, 0},
		"dotted field":       {bson.D{{Key: "_id", Value: "j1"}, {Key: "a.b", Value: 1}}, false, 0},
		"top-level $or":      {bson.D{{Key: "_id", Value: "j1"}, {Key: "$or", Value: bson.A{bson.D{{Key: "a", Value: 1}}}}}, false, 0},
		"$comment":           {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: 1}, {Key: "$comment", Value: "x"}}, false, 0},
		"regex":              {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.Regex{Pattern: "^q"}}}, false, 0},
		"$regex":             {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{{Key: "$regex", Value: "^q"}}}}, false, 0},
		"$gt":                {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{{Key: "$gt", Value: 1}}}}, false, 0},
		"array value":        {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.A{1}}}, false, 0},
		"document value":     {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{{Key: "b", Value: 1}}}}, false, 0},
		"empty document":     {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{}}}, false, 0},
		"NaN":                {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: math.NaN()}}, false, 0},
		"decimal":            {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.NewDecimal128(0, 1)}}, false, 0},
		"$exists: 1":         {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{{Key: "$exists", Value: 1}}}}, false, 0},
		"$in regex":          {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: bson.D{{Key: "$in", Value: bson.A{bson.Regex{Pattern: "x"}}}}}}, false, 0},
		"duplicate key":      {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: 1}, {Key: "a", Value: 2}}, false, 0},
		"duplicate _id":      {bson.D{{Key: "_id", Value: "j1"}, {Key: "a", Value: 1}, {Key: "_id", Value: "j2"}}, false, 0},
	} {
		t.Run(name, func(t *testing.T) {
			_, conds, ok := parseFilter(raw(t, tc.filter))
			if ok != tc.ok || len(conds) != tc.conds {
				t.Fatalf("ok %v with %d conditions, want %v with %d", ok, len(conds), tc.ok, tc.conds)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	doc := bson.D{
		{Key: "_id", Value: "j1"}, {Key: "state", Value: "queued"}, {Key: "attempt", Value: int32(2)},
		{Key: "big", Value: int64(1) << 60}, {Key: "ratio", Value: 2.0}, {Key: "ok", Value: true},
		{Key: "nothing", Value: nil}, {Key: "tags", Value: bson.A{"x"}}, {Key: "sub", Value: bson.D{{Key: "a", Value: 1}}},
		{Key: "nan", Value: math.NaN()}, {Key: "at", Value: time.UnixMilli(5)},
	}
	const unknown = "unknown"
	for name, tc := range map[string]struct {
		filter bson.D
		want   any // true, false or unknown
	}{
		"state equal":          {bson.D{{Key: "state", Value: "queued"}}, true},
		"state differs":        {bson.D{{Key: "state", Value: "running"}}, false},
		"state and attempt":    {bson.D{{Key: "state", Value: "queued"}, {Key: "attempt", Value: 2}}, true},
		"attempt differs":      {bson.D{{Key: "state", Value: "queued"}, {Key: "attempt", Value: 1}}, false},
		"int32 = int64":        {bson.D{{Key: "attempt", Value: int64(2)}}, true},
		"int32 = double":       {bson.D{{Key: "attempt", Value: 2.0}}, true},
		"double = int":         {bson.D{{Key: "ratio", Value: 2}}, true},
		"string is no number":  {bson.D{{Key: "attempt", Value: "2"}}, false},
		"bool":                 {bson.D{{Key: "ok", Value: true}}, true},
		"bool is no number":    {bson.D{{Key: "ok", Value: 1}}, false},
		"date":                 {bson.D{{Key: "at", Value: time.UnixMilli(5)}}, true},
		"date differs":         {bson.D{{Key: "at", Value: time.UnixMilli(6)}}, false},
		"null matches null":    {bson.D{{Key: "nothing", Value: nil}}, true},
		"null matches missing": {bson.D{{Key: "missing", Value: nil}}, true},
		"null vs value":        {bson.D{{Key: "state", Value: nil}}, false},
		"missing vs value":     {bson.D{{Key: "missing", Value: "x"}}, false},
		"exists":               {bson.D{{Key: "nothing", Value: bson.D{{Key: "$exists", Value: true}}}}, true},
		"exists, missing":      {bson.D{{Key: "missing", Value: bson.D{{Key: "$exists", Value: true}}}}, false},
		"not exists, missing":  {bson.D{{Key: "missing", Value: bson.D{{Key: "$exists", Value: false}}}}, true},
		"not exists, array":    {bson.D{{Key: "tags", Value: bson.D{{Key: "$exists", Value: false}}}}, false},
		"ne":                   {bson.D{{Key: "state", Value: bson.D{{Key: "$ne", Value: "running"}}}}, true},
		"ne equal":             {bson.D{{Key: "state", Value: bson.D{{Key: "$ne", Value: "queued"}}}}, false},
		"ne null, missing":     {bson.D{{Key: "missing", Value: bson.D{{Key: "$ne", Value: nil}}}}, false},
		"ne null, value":       {bson.D{{Key: "state", Value: bson.D{{Key: "$ne", Value: nil}}}}, true},
		"in":                   {bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"running", "queued"}}}}}, true},
		"in none":              {bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"running"}}}}}, false},
		"in empty":             {bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}, false},
		"in null, missing":     {bson.D{{Key: "missing", Value: bson.D{{Key: "$in", Value: bson.A{nil}}}}}, true},
		"eq op":                {bson.D{{Key: "state", Value: bson.D{{Key: "$eq", Value: "queued"}, {Key: "$ne", Value: "x"}}}}, true},
		"stored array":         {bson.D{{Key: "tags", Value: "x"}}, unknown},
		"stored document":      {bson.D{{Key: "sub", Value: "x"}}, unknown},
		"stored NaN":           {bson.D{{Key: "nan", Value: 1.0}}, unknown},
		"big int64 vs double":  {bson.D{{Key: "big", Value: float64(int64(1) << 60)}}, unknown},
		"big int64 vs int64":   {bson.D{{Key: "big", Value: int64(1) << 60}}, true},
		"false then unknown":   {bson.D{{Key: "state", Value: "running"}, {Key: "tags", Value: "x"}}, unknown},
	} {
		t.Run(name, func(t *testing.T) {
			f := append(bson.D{{Key: "_id", Value: "j1"}}, tc.filter...)
			_, conds, ok := parseFilter(raw(t, f))
			if !ok {
				t.Fatalf("filter %v not in the subset", f)
			}
			match, known := matches(conds, raw(t, doc))
			var got any = match
			if !known {
				got = unknown
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNarrowableMessages parses the commands the driver sends (the body, or a
// document sequence for update and delete statements) and checks that rebuild
// replaces only the filter.
func TestNarrowableMessages(t *testing.T) {
	filter := bson.D{{Key: "_id", Value: "j1"}, {Key: "state", Value: "queued"}}
	stmt := bson.D{{Key: "q", Value: filter}, {Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 1}}}}}}
	narrow := raw(t, bson.D{{Key: "_id", Value: "j1"}})

	for name, tc := range map[string]struct {
		body bson.D
		seq  *section
		ok   bool
	}{
		"find":             {body: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: filter}, {Key: "limit", Value: 1}, {Key: "$db", Value: "d"}}, ok: true},
		"findAndModify":    {body: bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: filter}, {Key: "update", Value: stmt[1].Value}, {Key: "new", Value: true}, {Key: "$db", Value: "d"}}, ok: true},
		"upsert: false":    {body: bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: filter}, {Key: "remove", Value: true}, {Key: "upsert", Value: false}, {Key: "$db", Value: "d"}}, ok: true},
		"update in body":   {body: bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{stmt}}, {Key: "ordered", Value: true}, {Key: "$db", Value: "d"}}, ok: true},
		"update sequence":  {body: bson.D{{Key: "update", Value: "c"}, {Key: "ordered", Value: true}, {Key: "$db", Value: "d"}}, seq: &section{kind: 1, ident: "updates", docs: []bson.Raw{raw(t, stmt)}}, ok: true},
		"delete sequence":  {body: bson.D{{Key: "delete", Value: "c"}, {Key: "$db", Value: "d"}}, seq: &section{kind: 1, ident: "deletes", docs: []bson.Raw{raw(t, bson.D{{Key: "q", Value: filter}, {Key: "limit", Value: 1}})}}, ok: true},
		"upsert":           {body: bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: filter}, {Key: "update", Value: stmt[1].Value}, {Key: "upsert", Value: true}, {Key: "$db", Value: "d"}}},
		"update upsert":    {body: bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{append(stmt, bson.E{Key: "upsert", Value: true})}}, {Key: "$db", Value: "d"}}},
		"two statements":   {body: bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{stmt, stmt}}, {Key: "$db", Value: "d"}}},
		"two in sequence":  {body: bson.D{{Key: "update", Value: "c"}, {Key: "$db", Value: "d"}}, seq: &section{kind: 1, ident: "updates", docs: []bson.Raw{raw(t, stmt), raw(t, stmt)}}},
		"collation":        {body: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: filter}, {Key: "collation", Value: bson.D{{Key: "locale", Value: "en"}}}, {Key: "$db", Value: "d"}}},
		"stmt collation":   {body: bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{append(stmt, bson.E{Key: "collation", Value: bson.D{{Key: "locale", Value: "en"}}})}}, {Key: "$db", Value: "d"}}},
		"other command":    {body: bson.D{{Key: "count", Value: "c"}, {Key: "query", Value: filter}, {Key: "$db", Value: "d"}}},
		"aggregate":        {body: bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$match", Value: filter}}}}, {Key: "$db", Value: "d"}}},
		"no $db":           {body: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: filter}}},
		"filter not a doc": {body: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: 1}, {Key: "$db", Value: "d"}}},
	} {
		t.Run(name, func(t *testing.T) {
			secs := []section{{kind: 0, docs: []bson.Raw{raw(t, tc.body)}}}
			if tc.seq != nil {
				secs = append(secs, *tc.seq)
			}
			req := buildOpMsg(77, 0, secs)
			if got, err := parseSections(req); err != nil || !reflect.DeepEqual(got, secs) {
				t.Fatalf("parseSections: %v, %v; want %v", got, err, secs)
			}
			n, ok := parseNarrowable(req)
			if ok != tc.ok {
				t.Fatalf("narrowable: %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if n.db != "d" || n.coll != "c" || n.id.StringValue() != "j1" || len(n.conds) != 1 {
				t.Fatalf("parsed %+v", n)
			}
			out, err := n.rebuild(narrow)
			if err != nil {
				t.Fatal(err)
			}
			if out.requestID() != 77 || out.opCode() != opMsg || int(int32(len(out))) != len(out) {
				t.Fatalf("rebuilt header: id %d, opcode %d", out.requestID(), out.opCode())
			}
			// The rebuilt message is the same as the original with the filter narrowed.
			wantBody := strings.Replace(raw(t, tc.body).String(), `{"_id": "j1","state": "queued"}`, `{"_id": "j1"}`, 1)
			gotSecs, err := parseSections(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := gotSecs[0].docs[0].String(); got != wantBody {
				t.Fatalf("body\n got %s\nwant %s", got, wantBody)
			}
			if tc.seq != nil {
				want := strings.Replace(tc.seq.docs[0].String(), `{"_id": "j1","state": "queued"}`, `{"_id": "j1"}`, 1)
				if len(gotSecs) != 2 || gotSecs[1].ident != tc.seq.ident || gotSecs[1].docs[0].String() != want {
					t.Fatalf("sequence %v, want %s", gotSecs[1:], want)
				}
			}
		})
	}
}

// fixture is the collection each case of TestNarrowedCommandsAnswerLikeFerretDB
// starts from.
var fixture = []any{
	bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "queued"}, {Key: "attempt", Value: 1}, {Key: "tags", Value: bson.A{"x"}}},
	bson.D{{Key: "_id", Value: "b"}, {Key: "state", Value: "running"}, {Key: "attempt", Value: 2}, {Key: "claim", Value: ""}},
	bson.D{{Key: "_id", Value: "c"}, {Key: "state", Value: "queued"}, {Key: "attempt", Value: 1}},
}

// TestNarrowedCommandsAnswerLikeFerretDB runs each command twice from the same
// collection: straight on FerretDB's socket (no proxy, no narrowing) and through
// the proxy. Replies and the collection afterwards must be the same, and the
// proxy must have narrowed exactly the commands in its subset.
func TestNarrowedCommandsAnswerLikeFerretDB(t *testing.T) {
	s := startServer(t)
	proxied := connect(t, s.URI(), nil).Database("narrow")
	direct := connect(t, "mongodb://"+url.PathEscape(s.sockPath)+"/", nil).Database("narrow")
	ctx := t.Context()

	set := bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}}
	q := func(kv ...any) bson.D {
		d := bson.D{}
		for i := 0; i < len(kv); i += 2 {
			d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
		}
		return d
	}
	fam := func(query bson.D, more ...bson.E) bson.D {
		return append(bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: query}, {Key: "update", Value: set}, {Key: "new", Value: true}}, more...)
	}
	update := func(query bson.D) bson.D {
		return bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{bson.D{{Key: "q", Value: query}, {Key: "u", Value: set}}}}}
	}
	del := func(query bson.D) bson.D {
		return bson.D{{Key: "delete", Value: "c"}, {Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: query}, {Key: "limit", Value: 1}}}}}
	}
	find := func(query bson.D) bson.D { return bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: query}} }

	for name, tc := range map[string]struct {
		cmd    bson.D
		narrow bool
	}{
		"cas wrong state":          {fam(q("_id", "a", "state", "running")), true},
		"cas right state":          {fam(q("_id", "a", "state", "queued")), true},
		"cas state and attempt":    {fam(q("_id", "a", "state", "queued", "attempt", 1)), true},
		"cas wrong attempt":        {fam(q("_id", "a", "state", "queued", "attempt", 2)), true},
		"cas missing document":     {fam(q("_id", "zz", "state", "queued")), true},
		"cas missing collection":   {bson.D{{Key: "findAndModify", Value: "none"}, {Key: "query", Value: q("_id", "a", "state", "queued")}, {Key: "update", Value: set}}, true},
		"remove wrong state":       {bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: q("_id", "b", "state", "queued")}, {Key: "remove", Value: true}}, true},
		"remove right state":       {bson.D{{Key: "findAndModify", Value: "c"}, {Key: "query", Value: q("_id", "b", "state", "running")}, {Key: "remove", Value: true}}, true},
		"cas bad update, no match": {append(fam(q("_id", "a", "state", "running"))[:2], bson.E{Key: "update", Value: q("$bogus", q("x", 1))}), true},
		"cas bad update, match":    {append(fam(q("_id", "a", "state", "queued"))[:2], bson.E{Key: "update", Value: q("$bogus", q("x", 1))}), true},
		"update wrong state":       {update(q("_id", "a", "state", "running")), true},
		"update right state":       {update(q("_id", "a", "state", "queued")), true},
		"update claim":             {update(q("_id", "b", "claim", "")), true},
		"update not revoked":       {update(q("_id", "b", "revoked", q("$exists", false))), true},
		"update $in":               {update(q("_id", "c", "state", q("$in", bson.A{"queued", "running"}))), true},
		"update $ne":               {update(q("_id", "c", "state", q("$ne", "queued"))), true},
		"delete wrong state":       {del(q("_id", "a", "state", "running")), true},
		"delete right state":       {del(q("_id", "a", "state", "queued")), true},
		"find wrong tenant":        {find(q("_id", "a", "state", "running")), true},
		"find right tenant":        {find(q("_id", "a", "state", "queued")), true},
		// Outside the subset: forwarded untouched.
		"array field":     {fam(q("_id", "a", "tags", "x")), false},
		"regex":           {fam(q("_id", "a", "state", q("$regex", "^que"))), false},
		"$or":             {fam(q("_id", "a", "$or", bson.A{q("state", "queued"), q("state", "x")})), false},
		"no _id":          {fam(q("state", "queued")), false},
		"_id alone":       {fam(q("_id", "c")), false},
		"upsert, new":     {fam(q("_id", "new", "state", "queued"), bson.E{Key: "upsert", Value: true}), false},
		"upsert, no hit":  {fam(q("_id", "a", "state", "running"), bson.E{Key: "upsert", Value: true}), false},
		"update upsert":   {bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{q("q", q("_id", "new", "state", "queued"), "u", set, "upsert", true)}}}, false},
		"find with $gt":   {find(q("_id", "a", "attempt", q("$gt", 0))), false},
		"sort and limits": {append(find(q("_id", "a", "state", "queued")), bson.E{Key: "sort", Value: q("x", 1)}, bson.E{Key: "projection", Value: q("state", 1)}), true},
	} {
		t.Run(name, func(t *testing.T) {
			run := func(db *mongo.Database) (bson.M, []bson.M) {
				t.Helper()
				if err := db.Collection("c").Drop(ctx); err != nil {
					t.Fatal(err)
				}
				_ = db.Collection("none").Drop(ctx)
				if _, err := db.Collection("c").InsertMany(ctx, fixture); err != nil {
					t.Fatal(err)
				}
				var reply bson.M
				err := db.RunCommand(ctx, tc.cmd).Decode(&reply)
				if err != nil {
					reply = bson.M{"error": err.Error()}
				}
				cur, err := db.Collection("c").Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
				if err != nil {
					t.Fatal(err)
				}
				var docs []bson.M
				if err := cur.All(ctx, &docs); err != nil {
					t.Fatal(err)
				}
				return reply, docs
			}
			wantReply, wantDocs := run(direct)
			before := s.narrowed.Load()
			gotReply, gotDocs := run(proxied)
			if narrowed := s.narrowed.Load() - before; narrowed != map[bool]uint64{false: 0, true: 1}[tc.narrow] {
				t.Errorf("narrowed %d commands, want narrowing %v", narrowed, tc.narrow)
			}
			if !reflect.DeepEqual(gotReply, wantReply) {
				t.Errorf("reply through the proxy:\n %v\nstraight from FerretDB:\n %v", gotReply, wantReply)
			}
			if !reflect.DeepEqual(gotDocs, wantDocs) {
				t.Errorf("documents after, through the proxy:\n %v\nstraight from FerretDB:\n %v", gotDocs, wantDocs)
			}
		})
	}
}

// TestNarrowedCASWithDriver: a compare-and-set through the driver (update
// statements in a document sequence) with the wrong state does not update and
// answers "no match"; with the right state it updates.
func TestNarrowedCASWithDriver(t *testing.T) {
	s := startServer(t)
	coll := connect(t, s.URI(), nil).Database("narrow").Collection("jobs")
	ctx := t.Context()
	if _, err := coll.InsertMany(ctx, fixture); err != nil {
		t.Fatal(err)
	}
	before := s.narrowed.Load()

	res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "running"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "done"}}}})
	if err != nil || res.MatchedCount != 0 || res.ModifiedCount != 0 {
		t.Fatalf("update with the wrong state: %+v, %v", res, err)
	}
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "running"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "done"}}}}).Err()
	if err != mongo.ErrNoDocuments {
		t.Fatalf("findOneAndUpdate with the wrong state: %v, want ErrNoDocuments", err)
	}
	dres, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "running"}})
	if err != nil || dres.DeletedCount != 0 {
		t.Fatalf("delete with the wrong state: %+v, %v", dres, err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil || got["state"] != "queued" {
		t.Fatalf("after the failed CASes: %v, %v", got, err)
	}

	res, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "queued"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}})
	if err != nil || res.MatchedCount != 1 || res.ModifiedCount != 1 {
		t.Fatalf("update with the right state: %+v, %v", res, err)
	}
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "running"}, {Key: "attempt", Value: 1}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "done"}}}}, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&got)
	if err != nil || got["state"] != "done" {
		t.Fatalf("findOneAndUpdate with the right state: %v, %v", got, err)
	}
	if n := s.narrowed.Load() - before; n != 5 {
		t.Errorf("narrowed %d commands, want 5", n)
	}
}

// TestNarrowedRaceHasOneWinner is TestFindOneAndUpdateHasOneWinner with string
// _ids, which the proxy narrows: the check and the update it forwards must be
// one atomic step.
func TestNarrowedRaceHasOneWinner(t *testing.T) {
	const racers = 16
	docs := 60
	if raceEnabled {
		docs = 20
	}
	s := startServer(t)
	client := connect(t, s.URI(), options.Client().SetMaxPoolSize(racers))
	coll := client.Database("linearizable").Collection("jobs")
	before := s.narrowed.Load()
	winners := raceFindOneAndUpdate(t, coll, docs, racers, func(i int) any { return fmt.Sprintf("job-%04d", i) })
	for i, w := range winners {
		if w != 1 {
			t.Errorf("doc %d: %d winners, want exactly 1", i, w)
		}
	}
	if n := s.narrowed.Load() - before; n != uint64(docs*racers) {
		t.Errorf("narrowed %d of %d findAndModify", n, docs*racers)
	}
}

// TestIDIndex: a collection's table gets the _id index, FerretDB's _id lookup
// uses it (this fails if a FerretDB upgrade changes its SQL), FerretDB does
// not list it, and it comes back after drops.
func TestIDIndex(t *testing.T) {
	s := startServer(t)
	db := connect(t, s.URI(), nil).Database("idx")
	ctx := t.Context()
	coll := db.Collection("jobs")

	plan := func() string {
		t.Helper()
		h, err := sql.Open("sqlite", "file:"+filepath.Join(s.ids.dir, "idx.sqlite")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var table string
		if err := h.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'jobs'`).Scan(&table); err != nil {
			t.Fatal(err)
		}
		rows, err := h.Query(`EXPLAIN QUERY PLAN UPDATE `+quoteIdent(table)+` SET _ferretdb_sjson = ? WHERE `+idColumn+` = ?`, "{}", `"x"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	check := func(step string) {
		t.Helper()
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "queued"}}); err != nil {
			t.Fatal(err)
		}
		if p := plan(); !strings.Contains(p, "USING INDEX _ferretdb_aigw_id_") {
			t.Fatalf("%s: FerretDB's update by _id does not use the index: %s", step, p)
		}
		cur, err := coll.Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var idx []bson.M
		if err := cur.All(ctx, &idx); err != nil {
			t.Fatal(err)
		}
		if len(idx) != 1 || idx[0]["name"] != "_id_" {
			t.Fatalf("%s: listIndexes: %v, want only _id_", step, idx)
		}
	}
	check("new collection")
	if err := coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	check("after drop")
	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	check("after dropDatabase")
}

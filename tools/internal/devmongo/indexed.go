package devmongo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Indexed queries: a find, or an aggregate of a $match optionally followed by
// a $group on one field, whose filter is in the evaluator's subset (pred.go)
// and constrains a field that leads a mirrored index (mirror.go) is answered
// in time bounded by its candidates, not the collection:
//
//  1. the candidates' _ids come from SQLite through the mirrored index (a
//     superset of the matching documents);
//  2. each candidate is fetched from FerretDB by _id (pushed down);
//  3. the proxy evaluates the whole filter on each;
//  4. with no match, the command goes to FerretDB with its filter replaced by
//     one that matches nothing, so FerretDB itself answers exactly as it
//     would have; with matches, the proxy sorts, skips and limits them (or
//     groups them) and answers as FerretDB does, in one batch.
//
// It runs beside writes to other documents (lanes.go), so it never hands
// FerretDB a filter that stands for a match it found: a document could change
// between the proxy's check and FerretDB's read. With no match, FerretDB
// answers a filter that matches nothing; with one or more, the proxy answers
// from the documents as it fetched them, each read whole. Like MongoDB's, such
// a read is not a snapshot of the collection: each document is as it was at
// some moment during the read. Anything outside the subset (a
// projection, a collation, a batch too small for the result, a value the
// evaluator or the sort cannot decide, too many candidates, an SQL error) goes
// to FerretDB untouched.

// maxCandidates bounds the documents fetched for one query; beyond it the
// query goes to FerretDB.
const maxCandidates = 20000

// maxReplyDocs bounds the bytes of documents the proxy puts in one reply (as
// MongoDB's 16 MiB batches).
const maxReplyDocs = 16 << 20

// candidateProbeBase is the requestID of the first candidate fetch on a
// FerretDB connection; the next ones count down from it.
const candidateProbeBase int32 = -1000

// fetchChunk is how many fetches are written before their replies are read.
const fetchChunk = 32

// sortKey is one key of a sort.
type sortKey struct {
	path []string
	desc bool
}

// indexedQuery is a command the proxy may answer from the mirrored indexes.
type indexedQuery struct {
	db, coll string
	reqID    int32
	find     bool // find; else aggregate
	preds    []pred
	sort     []sortKey
	skip     int64
	limit    int64  // 0: none
	batch    int64  // -1: none
	group    string // aggregate: the $group's _id field; "" without $group
	grouped  bool
	// rebuild returns the request with its filter replaced.
	rebuild func(filter bson.Raw) (message, error)
}

// ignoredFields are the body fields that do not change an indexed query's
// answer.
var ignoredFields = map[string]bool{
	"$db": true, "lsid": true, "$clusterTime": true, "$readPreference": true,
	"readConcern": true, "maxTimeMS": true, "comment": true,
}

// parseIndexed recognizes a find or aggregate the proxy may answer itself.
func parseIndexed(req message) (*indexedQuery, bool) {
	if req.opCode() != opMsg || req.flags() != 0 {
		return nil, false
	}
	secs, err := parseSections(req)
	if err != nil || len(secs) != 1 || secs[0].kind != 0 {
		return nil, false
	}
	body := secs[0].docs[0]
	elems, err := body.Elements()
	if err != nil || len(elems) == 0 {
		return nil, false
	}
	coll, ok := elems[0].Value().StringValueOK()
	if !ok || coll == "" {
		return nil, false
	}
	q := &indexedQuery{coll: coll, reqID: req.requestID(), batch: -1}
	if q.db, ok = body.Lookup("$db").StringValueOK(); !ok || q.db == "" {
		return nil, false
	}
	rebuildBody := func(b bson.Raw) message {
		return buildOpMsg(req.requestID(), req.flags(), []section{{kind: 0, docs: []bson.Raw{b}}})
	}
	switch elems[0].Key() {
	case "find":
		q.find = true
		var filter bson.Raw
		for _, e := range elems[1:] {
			v := e.Value()
			switch k := e.Key(); {
			case ignoredFields[k]:
			case k == "filter":
				if filter, ok = v.DocumentOK(); !ok {
					return nil, false
				}
			case k == "sort":
				if q.sort, ok = parseSort(v); !ok {
					return nil, false
				}
			case k == "projection":
				if p, ok := v.DocumentOK(); !ok || len(p) != 5 {
					return nil, false // a projection is left to FerretDB
				}
			case k == "limit" || k == "skip" || k == "batchSize":
				n, ok := nonNegative(v)
				if !ok {
					return nil, false
				}
				switch k {
				case "limit":
					q.limit = n
				case "skip":
					q.skip = n
				default:
					q.batch = n
				}
			case k == "singleBatch":
				if _, ok := v.BooleanOK(); !ok {
					return nil, false
				}
			default:
				return nil, false
			}
		}
		if filter == nil {
			return nil, false
		}
		if q.preds, ok = parsePreds(filter); !ok {
			return nil, false
		}
		q.rebuild = func(f bson.Raw) (message, error) {
			b, err := withField(body, "filter", bson.TypeEmbeddedDocument, f)
			if err != nil {
				return nil, err
			}
			return rebuildBody(b), nil
		}

	case "aggregate":
		var pipeline bson.Raw
		for _, e := range elems[1:] {
			v := e.Value()
			switch k := e.Key(); {
			case ignoredFields[k] || k == "allowDiskUse":
			case k == "pipeline":
				arr, ok := v.ArrayOK()
				if !ok {
					return nil, false
				}
				pipeline = bson.Raw(arr)
			case k == "cursor":
				c, ok := v.DocumentOK()
				if !ok {
					return nil, false
				}
				ce, err := c.Elements()
				if err != nil {
					return nil, false
				}
				for _, x := range ce {
					if x.Key() != "batchSize" {
						return nil, false
					}
					if q.batch, ok = nonNegative(x.Value()); !ok {
						return nil, false
					}
				}
			default:
				return nil, false
			}
		}
		if pipeline == nil || body.Lookup("cursor").Type == 0 {
			return nil, false
		}
		stages, err := pipeline.Values()
		if err != nil || len(stages) == 0 || len(stages) > 2 {
			return nil, false
		}
		filter, ok := onlyField(stages[0], "$match").DocumentOK()
		if !ok {
			return nil, false
		}
		if q.preds, ok = parsePreds(filter); !ok {
			return nil, false
		}
		if len(stages) == 2 {
			g, ok := onlyField(stages[1], "$group").DocumentOK()
			if !ok {
				return nil, false
			}
			ref, ok := onlyField(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: g}, "_id").StringValueOK()
			if !ok || !strings.HasPrefix(ref, "$") || !safeSegment.MatchString(ref[1:]) {
				return nil, false
			}
			q.group, q.grouped = ref[1:], true
		}
		q.rebuild = func(f bson.Raw) (message, error) {
			match := bsoncore.BuildDocument(nil, bsoncore.AppendDocumentElement(nil, "$match", f))
			st, err := withField(pipeline, "0", bson.TypeEmbeddedDocument, match)
			if err != nil {
				return nil, err
			}
			b, err := withField(body, "pipeline", bson.TypeArray, st)
			if err != nil {
				return nil, err
			}
			return rebuildBody(b), nil
		}

	default:
		return nil, false
	}
	if len(q.preds) == 0 {
		return nil, false
	}
	return q, true
}

// onlyField returns the value of a document's only field when it is key.
func onlyField(v bson.RawValue, key string) bson.RawValue {
	d, ok := v.DocumentOK()
	if !ok {
		return bson.RawValue{}
	}
	elems, err := d.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != key {
		return bson.RawValue{}
	}
	return elems[0].Value()
}

// nonNegative reads a non-negative whole number.
func nonNegative(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32, bson.TypeInt64:
		n := v.AsInt64()
		return n, n >= 0
	case bson.TypeDouble:
		f := v.Double()
		return int64(f), f >= 0 && f == float64(int64(f)) && f < maxExactInt
	}
	return 0, false
}

// parseSort parses a sort document of field paths and 1 or -1.
func parseSort(v bson.RawValue) ([]sortKey, bool) {
	d, ok := v.DocumentOK()
	if !ok {
		return nil, false
	}
	elems, err := d.Elements()
	if err != nil {
		return nil, false
	}
	keys := make([]sortKey, 0, len(elems))
	for _, e := range elems {
		path, ok := parsePath(e.Key())
		if !ok {
			return nil, false
		}
		var dir int64
		switch x := e.Value(); x.Type {
		case bson.TypeInt32, bson.TypeInt64:
			dir = x.AsInt64()
		case bson.TypeDouble:
			dir = int64(x.Double())
			if float64(dir) != x.Double() {
				return nil, false
			}
		default:
			return nil, false
		}
		if dir != 1 && dir != -1 {
			return nil, false
		}
		keys = append(keys, sortKey{path: path, desc: dir == -1})
	}
	return keys, true
}

// sqlArg is v as the mirrors' key expression yields it (see keyExpr); false
// for null and what the mirrors do not compare.
func sqlArg(v bson.RawValue) (any, bool) {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue(), true
	case bson.TypeObjectID:
		oid := v.ObjectID()
		return hex.EncodeToString(oid[:]), true
	case bson.TypeInt32, bson.TypeInt64:
		return v.AsInt64(), true
	case bson.TypeDouble:
		return v.Double(), isScalar(v)
	case bson.TypeBoolean:
		if v.Boolean() {
			return int64(1), true
		}
		return int64(0), true
	case bson.TypeDateTime:
		return v.DateTime(), true
	}
	return nil, false
}

// textual reports whether the mirrors hold v's type as SQL text.
func textual(t bson.Type) bool { return t == bson.TypeString || t == bson.TypeObjectID }

// candidateSQL returns the query of the candidates' _ids (their type and
// value) and its arguments, or false when no condition constrains a field
// that leads a mirrored index. Every term keeps documents with an array on the
// field's path (keyArray), so the candidates include every match.
func candidateSQL(info *collInfo, preds []pred) (string, []any, bool) {
	var terms []string
	var args []any
	led := false
	for _, p := range preds {
		segs, ok := info.fields[p.field]
		if !ok {
			continue
		}
		e := keyExpr(segs)
		var term string
		switch p.op {
		case pEq, pIn:
			ph := make([]string, 0, len(p.vals))
			var vs []any
			for _, v := range p.vals {
				a, ok := sqlArg(v)
				if !ok {
					vs = nil
					break
				}
				ph = append(ph, "?")
				vs = append(vs, a)
			}
			if vs == nil && len(p.vals) > 0 {
				continue
			}
			ph = append(ph, keyArray)
			term = fmt.Sprintf("%s IN (%s)", e, strings.Join(ph, ", "))
			args = append(args, vs...)
		case pLt, pLte, pGt, pGte:
			a, ok := sqlArg(p.vals[0])
			if !ok {
				continue
			}
			op := map[predOp]string{pLt: "<", pLte: "<=", pGt: ">", pGte: ">="}[p.op]
			// Bound the other side to the operand's SQL class: numbers
			// (numbers, dates, bools) sort before text, text before blobs.
			var bound string
			switch {
			case textual(p.vals[0].Type) && (p.op == pLt || p.op == pLte):
				bound = fmt.Sprintf(" AND %s >= ''", e)
			case textual(p.vals[0].Type):
				bound = fmt.Sprintf(" AND %s < X''", e)
			case p.op == pGt || p.op == pGte:
				bound = fmt.Sprintf(" AND %s < ''", e)
			}
			term = fmt.Sprintf("((%s %s ?%s) OR %s = %s)", e, op, bound, e, keyArray)
			args = append(args, a)
		case pType:
			numeric, text := true, true
			for _, t := range p.types {
				numeric = numeric && !textual(t) && t != bson.TypeNull
				text = text && textual(t)
			}
			switch {
			case numeric:
				term = fmt.Sprintf("(%s < '' OR %s = %s)", e, e, keyArray)
			case text:
				term = fmt.Sprintf("((%s >= '' AND %s < X'') OR %s = %s)", e, e, e, keyArray)
			default:
				continue
			}
		default:
			continue
		}
		terms = append(terms, term)
		led = led || info.lead[p.field]
	}
	if !led {
		return "", nil, false
	}
	// No ORDER BY rowid: it could make SQLite prefer a scan in rowid order.
	q := fmt.Sprintf(`SELECT rowid, %[1]s->>'$."$s"."p"."_id"."t"', %[1]s->>'$."_id"' FROM %[2]s WHERE %[3]s LIMIT %[4]d`,
		sjsonColumn, quoteIdent(info.table), strings.Join(terms, " AND "), maxCandidates+1)
	return q, args, true
}

// candidates returns the _ids of the documents that may match q, in table
// order; false when the query is not served by a mirrored index.
func (s *Server) candidates(ctx context.Context, q *indexedQuery) ([]bson.RawValue, bool) {
	info, h := s.ids.collection(q.db, q.coll)
	if info == nil || h == nil {
		return nil, false
	}
	query, args, ok := candidateSQL(info, q.preds)
	if !ok {
		return nil, false
	}
	rows, err := h.QueryContext(ctx, query, args...)
	if err != nil {
		s.log.Warn("devmongo: candidate query failed; the query goes to FerretDB", "db", q.db, "collection", q.coll, "err", err)
		return nil, false
	}
	defer rows.Close()
	type cand struct {
		rowid int64
		id    bson.RawValue
	}
	var cands []cand
	for rows.Next() {
		var rowid int64
		var typ, val *string
		if err := rows.Scan(&rowid, &typ, &val); err != nil || typ == nil || val == nil {
			return nil, false
		}
		switch *typ {
		case "string":
			cands = append(cands, cand{rowid, bson.RawValue{Type: bson.TypeString, Value: bsoncore.AppendString(nil, *val)}})
		case "objectId":
			b, err := hex.DecodeString(*val)
			if err != nil || len(b) != 12 {
				return nil, false
			}
			cands = append(cands, cand{rowid, bson.RawValue{Type: bson.TypeObjectID, Value: b}})
		default:
			return nil, false // FerretDB pushes down no other _id
		}
	}
	if rows.Err() != nil || len(cands) > maxCandidates {
		return nil, false
	}
	// Table order, as FerretDB reads documents when it scans.
	slices.SortFunc(cands, func(a, b cand) int { return cmpInt(a.rowid, b.rowid) })
	ids := make([]bson.RawValue, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	return ids, true
}

// fetch reads the documents with the given _ids through pc's FerretDB
// connection, a lookup each (pushed down), written a chunk at a time ahead of
// reading the replies. A document that is gone is skipped; ok is false when a
// reply is not what a lookup by _id returns. An error means pc's FerretDB
// connection is unusable.
func (s *Server) fetch(pc *proxyConn, db, coll string, ids []bson.RawValue) (docs []bson.Raw, ok bool, err error) {
	ok = true
	for start := 0; start < len(ids); start += fetchChunk {
		chunk := ids[start:min(start+fetchChunk, len(ids))]
		var out []byte
		for i, id := range chunk {
			m, err := newOpMsg(candidateProbeBase-int32(start+i), 0, bson.D{
				{Key: "find", Value: coll},
				{Key: "filter", Value: idFilter(id)},
				{Key: "limit", Value: int32(2)},
				{Key: "batchSize", Value: int32(2)},
				{Key: "singleBatch", Value: true},
				{Key: "$db", Value: db},
			})
			if err != nil {
				return nil, false, nil
			}
			out = append(out, m...)
		}
		if _, err := pc.backend.Write(out); err != nil {
			return nil, false, fmt.Errorf("to ferretdb: %w", err)
		}
		for i := range chunk {
			rep, err := readMessage(pc.br)
			if err != nil {
				return nil, false, fmt.Errorf("from ferretdb: %w", err)
			}
			if want := candidateProbeBase - int32(start+i); rep.responseTo() != want || rep.moreToCome() {
				return nil, false, fmt.Errorf("from ferretdb: reply to request %d, want the fetch's %d", rep.responseTo(), want)
			}
			if !ok {
				continue // read every reply, use none
			}
			body, err := opMsgBody(rep)
			if err != nil {
				ok = false
				continue
			}
			batch, isArr := body.Lookup("cursor", "firstBatch").ArrayOK()
			if n, _ := body.Lookup("ok").AsFloat64OK(); n != 1 || !isArr {
				ok = false
				continue
			}
			if id, isInt := body.Lookup("cursor", "id").AsInt64OK(); !isInt || id != 0 {
				ok = false
				continue
			}
			vals, err := batch.Values()
			if err != nil || len(vals) > 1 {
				ok = false
				continue
			}
			for _, v := range vals {
				d, isDoc := v.DocumentOK()
				if !isDoc {
					ok = false
					continue
				}
				docs = append(docs, d)
			}
		}
	}
	if !ok {
		return nil, false, nil
	}
	return docs, true, nil
}

// answerIndexed runs beside other commands (see above). It returns the request to forward
// in place of the client's (nil: forward it untouched) or the reply to send
// back. An error means pc's FerretDB connection is unusable.
func (s *Server) answerIndexed(pc *proxyConn, q *indexedQuery) (forward, reply message, err error) {
	ids, ok := s.candidates(context.Background(), q)
	if !ok {
		return nil, nil, nil
	}
	docs, ok, err := s.fetch(pc, q.db, q.coll, ids)
	if err != nil || !ok {
		return nil, nil, err
	}
	var matched []bson.Raw
	for _, d := range docs {
		m, known := matchAll(q.preds, d)
		if !known {
			return nil, nil, nil
		}
		if m {
			matched = append(matched, d)
		}
	}
	if len(matched) == 0 {
		// FerretDB answers itself, on no document.
		fwd, err := q.rebuild(noMatchFilter())
		if err != nil {
			return nil, nil, nil
		}
		s.indexed.Add(1)
		return fwd, nil, nil
	}

	var batch []bson.Raw
	if q.grouped {
		if batch, ok = groupBy(matched, q.group); !ok {
			return nil, nil, nil
		}
	} else {
		if len(q.sort) > 0 && len(matched) > 1 {
			if matched, ok = sortDocs(matched, q.sort); !ok {
				return nil, nil, nil
			}
		}
		matched = matched[min(q.skip, int64(len(matched))):]
		if q.limit > 0 && int64(len(matched)) > q.limit {
			matched = matched[:q.limit]
		}
		batch = matched
	}
	if q.batch >= 0 && int64(len(batch)) > q.batch {
		return nil, nil, nil // the client asked for a cursor
	}
	size := 0
	for _, d := range batch {
		size += len(d)
	}
	if size > maxReplyDocs {
		return nil, nil, nil
	}
	arr := bsoncore.NewArrayBuilder()
	for _, d := range batch {
		arr.AppendDocument(d)
	}
	cursor := bsoncore.NewDocumentBuilder().
		AppendArray("firstBatch", arr.Build()).
		AppendInt64("id", 0).
		AppendString("ns", q.db+"."+q.coll).
		Build()
	doc := bsoncore.NewDocumentBuilder().AppendDocument("cursor", cursor).AppendDouble("ok", 1).Build()
	rep := buildOpMsg(0, 0, []section{{kind: 0, docs: []bson.Raw{bson.Raw(doc)}}})
	setResponseTo(rep, q.reqID)
	s.indexed.Add(1)
	return nil, rep, nil
}

// groupBy is {$group: {_id: "$field"}} over docs: a document {_id: value} per
// distinct value (null for a missing field), in the order of first
// appearance. Values the proxy does not group (numbers, arrays, documents and
// the rest) make it report false.
func groupBy(docs []bson.Raw, field string) ([]bson.Raw, bool) {
	var out []bson.Raw
	seen := map[string]bool{}
	for _, d := range docs {
		v, err := d.LookupErr(field)
		switch {
		case errors.Is(err, bsoncore.ErrElementNotFound):
			v = bson.RawValue{Type: bson.TypeNull}
		case err != nil:
			return nil, false
		}
		switch v.Type {
		case bson.TypeString, bson.TypeObjectID, bson.TypeBoolean, bson.TypeDateTime, bson.TypeNull:
		default:
			return nil, false
		}
		key := string(rune(v.Type)) + string(v.Value)
		if seen[key] {
			continue
		}
		seen[key] = true
		el := bsoncore.AppendHeader(nil, bsoncore.Type(v.Type), "_id")
		out = append(out, bson.Raw(bsoncore.BuildDocument(nil, append(el, v.Value...))))
	}
	return out, true
}

// sortDocs sorts docs stably by keys as MongoDB orders values (a missing field
// as null). An array, a document or a value it does not order on a sort path
// makes it report false.
func sortDocs(docs []bson.Raw, keys []sortKey) ([]bson.Raw, bool) {
	type row struct {
		doc  bson.Raw
		vals []bson.RawValue
	}
	rows := make([]row, len(docs))
	for r, d := range docs {
		rows[r] = row{doc: d, vals: make([]bson.RawValue, len(keys))}
		for i, k := range keys {
			vs, sawArray, known := pathValues(d, k.path)
			if !known || sawArray || len(vs) > 1 {
				return nil, false
			}
			v := bson.RawValue{Type: bson.TypeNull}
			if len(vs) == 1 {
				v = vs[0]
			}
			if bracket(v.Type) == 0 || (v.Type == bson.TypeDouble && !isScalar(v)) {
				return nil, false
			}
			rows[r].vals[i] = v
		}
	}
	known := true
	slices.SortStableFunc(rows, func(a, b row) int {
		for i, k := range keys {
			x, y := a.vals[i], b.vals[i]
			c := bracket(x.Type) - bracket(y.Type)
			if c == 0 {
				var ok bool
				if c, ok = compareValues(x, y); !ok {
					known = false
				}
			}
			if c != 0 {
				if k.desc {
					return -c
				}
				return c
			}
		}
		return 0
	})
	out := make([]bson.Raw, len(rows))
	for i, r := range rows {
		out[i] = r.doc
	}
	return out, known
}

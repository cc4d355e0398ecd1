package devmongo

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Narrowing: FerretDB v1.24's SQLite backend pushes a filter down to SQL only
// when it is {_id: <string or ObjectID>} alone; any other filter reads and
// decodes the whole collection. So a compare-and-set such as
// findAndModify({_id: X, state: "queued"}, …) costs time in proportion to the
// collection's size.
//
// Since the proxy runs one command at a time on a document, it can do the
// compare itself:
// for a find, findAndModify, update or delete (one statement, no upsert, no
// collation) whose filter is {_id: X} plus conditions in a small subset
// (top-level fields, no dots; equality to a string, number, bool, null,
// ObjectID or date; $eq, $ne, $in of those; $exists), it first fetches the
// document {_id: X} (pushed down), evaluates the conditions on it in Go, then
// forwards the command with its filter replaced by
//   - {_id: X} when the document matches (or when there is none), or
//   - {_id: <a fresh random ObjectID>} when it does not: a filter that matches
//     nothing, so FerretDB itself executes the command on no document and
//     answers exactly as it would have (n: 0, value: null, an empty cursor),
//     validation errors included.
//
// Both round trips happen while the command holds the lane of document X
// (lanes.go), so no other command that could write X runs between the check
// and the act. Whatever the evaluator cannot decide with
// certainty (an array or embedded document in the stored field, NaN, a large
// int64 beside a double, an unknown operator, several documents with that
// _id, a probe that fails) is forwarded untouched, as before.

// narrowable is a command whose filter the proxy may narrow to {_id}.
type narrowable struct {
	db, coll string
	id       bson.RawValue // a string or ObjectID
	conds    []cond
	// rebuild returns the request with its filter replaced by filter.
	rebuild func(filter bson.Raw) (message, error)
}

// section is one section of an OP_MSG: the body (kind 0, one document) or a
// document sequence (kind 1).
type section struct {
	kind  byte
	ident string
	docs  []bson.Raw
}

// parseSections splits an OP_MSG (without checksum) into its sections.
func parseSections(m message) ([]section, error) {
	if m.opCode() != opMsg {
		return nil, fmt.Errorf("%w: opcode %d is not OP_MSG", errFraming, m.opCode())
	}
	if m.flags()&flagChecksumPresent != 0 {
		return nil, errors.New("checksum present")
	}
	var secs []section
	for i := headerLen + 4; i < len(m); {
		kind := m[i]
		i++
		if i+4 > len(m) {
			return nil, fmt.Errorf("%w: truncated section", errFraming)
		}
		size := int(binary.LittleEndian.Uint32(m[i : i+4]))
		if size < 5 || i+size > len(m) {
			return nil, fmt.Errorf("%w: section size %d", errFraming, size)
		}
		switch kind {
		case 0:
			doc := bson.Raw(m[i : i+size])
			if err := doc.Validate(); err != nil {
				return nil, fmt.Errorf("%w: %w", errFraming, err)
			}
			secs = append(secs, section{kind: 0, docs: []bson.Raw{doc}})
		case 1:
			seq := m[i+4 : i+size]
			nul := bytes.IndexByte(seq, 0)
			if nul < 0 {
				return nil, fmt.Errorf("%w: sequence identifier not terminated", errFraming)
			}
			sec := section{kind: 1, ident: string(seq[:nul])}
			for rest := seq[nul+1:]; len(rest) > 0; {
				if len(rest) < 5 {
					return nil, fmt.Errorf("%w: truncated sequence document", errFraming)
				}
				n := int(binary.LittleEndian.Uint32(rest[:4]))
				if n < 5 || n > len(rest) {
					return nil, fmt.Errorf("%w: sequence document size %d", errFraming, n)
				}
				doc := bson.Raw(rest[:n])
				if err := doc.Validate(); err != nil {
					return nil, fmt.Errorf("%w: %w", errFraming, err)
				}
				sec.docs = append(sec.docs, doc)
				rest = rest[n:]
			}
			secs = append(secs, sec)
		default:
			return nil, fmt.Errorf("%w: section kind %d", errFraming, kind)
		}
		i += size
	}
	return secs, nil
}

// buildOpMsg assembles an OP_MSG from sections.
func buildOpMsg(requestID int32, flags uint32, secs []section) message {
	m := make(message, headerLen, 256)
	binary.LittleEndian.PutUint32(m[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(m[12:], uint32(opMsg))
	m = binary.LittleEndian.AppendUint32(m, flags)
	for _, s := range secs {
		m = append(m, s.kind)
		if s.kind == 0 {
			m = append(m, s.docs[0]...)
			continue
		}
		start := len(m)
		m = binary.LittleEndian.AppendUint32(m, 0)
		m = append(m, s.ident...)
		m = append(m, 0)
		for _, d := range s.docs {
			m = append(m, d...)
		}
		binary.LittleEndian.PutUint32(m[start:], uint32(len(m)-start))
	}
	binary.LittleEndian.PutUint32(m[0:], uint32(len(m)))
	return m
}

// withField returns doc with the value of its element key replaced by a value
// of type t whose bytes are data.
func withField(doc bson.Raw, key string, t bson.Type, data []byte) (bson.Raw, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(doc)+len(data)))
	found := false
	for _, e := range elems {
		if e.Key() == key && !found {
			found = true
			out = bsoncore.AppendHeader(out, bsoncore.Type(t), key)
			out = append(out, data...)
			continue
		}
		out = append(out, e...)
	}
	if !found {
		return nil, fmt.Errorf("no field %q", key)
	}
	return bsoncore.AppendDocumentEnd(out, idx)
}

// parseNarrowable recognizes a command the proxy may narrow.
func parseNarrowable(req message) (*narrowable, bool) {
	if debugHook != nil {
		debugHook("req", req.flags())
		if b, err := opMsgBody(req); err == nil {
			debugHook("body", b.String())
		}
	}
	if req.opCode() != opMsg || req.flags() != 0 {
		return nil, false
	}
	secs, err := parseSections(req)
	if err != nil {
		return nil, false
	}
	bodyAt := -1
	for i, s := range secs {
		if s.kind == 0 {
			if bodyAt >= 0 {
				return nil, false
			}
			bodyAt = i
		}
	}
	if bodyAt < 0 {
		return nil, false
	}
	body := secs[bodyAt].docs[0]
	first, err := body.IndexErr(0)
	if err != nil {
		return nil, false
	}
	coll, ok := first.Value().StringValueOK()
	if !ok || coll == "" {
		return nil, false
	}
	db, ok := body.Lookup("$db").StringValueOK()
	if !ok || db == "" {
		return nil, false
	}
	if _, err := body.LookupErr("collation"); err == nil {
		return nil, false
	}
	n := &narrowable{db: db, coll: coll}

	// replaceBody returns the request with a new body.
	replaceBody := func(b bson.Raw) message {
		out := append([]section(nil), secs...)
		out[bodyAt] = section{kind: 0, docs: []bson.Raw{b}}
		return buildOpMsg(req.requestID(), req.flags(), out)
	}

	var filter bson.Raw
	switch cmd := first.Key(); cmd {
	case "find", "findAndModify", "findandmodify":
		key := "filter"
		if cmd != "find" {
			key = "query"
			if !isFalsyOrMissing(body, "upsert") {
				return nil, false
			}
		}
		if filter, ok = body.Lookup(key).DocumentOK(); !ok {
			return nil, false
		}
		n.rebuild = func(f bson.Raw) (message, error) {
			b, err := withField(body, key, bson.TypeEmbeddedDocument, f)
			if err != nil {
				return nil, err
			}
			return replaceBody(b), nil
		}

	case "update", "delete":
		ident := cmd + "s" // updates, deletes
		// The one statement is either in a document sequence or in the body.
		var stmt bson.Raw
		seqAt := -1
		for i, s := range secs {
			if s.kind == 1 && s.ident == ident {
				if seqAt >= 0 || len(s.docs) != 1 {
					return nil, false
				}
				seqAt, stmt = i, s.docs[0]
			}
		}
		arr, inBody := body.Lookup(ident).ArrayOK()
		switch {
		case inBody && seqAt < 0:
			vals, err := arr.Values()
			if err != nil || len(vals) != 1 {
				return nil, false
			}
			if stmt, ok = vals[0].DocumentOK(); !ok {
				return nil, false
			}
		case seqAt < 0 || inBody:
			return nil, false
		}
		if !isFalsyOrMissing(stmt, "upsert") {
			return nil, false
		}
		if _, err := stmt.LookupErr("collation"); err == nil {
			return nil, false
		}
		if filter, ok = stmt.Lookup("q").DocumentOK(); !ok {
			return nil, false
		}
		n.rebuild = func(f bson.Raw) (message, error) {
			st, err := withField(stmt, "q", bson.TypeEmbeddedDocument, f)
			if err != nil {
				return nil, err
			}
			if seqAt >= 0 {
				out := append([]section(nil), secs...)
				out[seqAt] = section{kind: 1, ident: ident, docs: []bson.Raw{st}}
				return buildOpMsg(req.requestID(), req.flags(), out), nil
			}
			a, err := withField(bson.Raw(arr), "0", bson.TypeEmbeddedDocument, st)
			if err != nil {
				return nil, err
			}
			b, err := withField(body, ident, bson.TypeArray, a)
			if err != nil {
				return nil, err
			}
			return replaceBody(b), nil
		}

	default:
		return nil, false
	}

	if n.id, n.conds, ok = parseFilter(filter); !ok {
		return nil, false
	}
	return n, true
}

// isFalsyOrMissing reports whether doc has no key, or false there.
func isFalsyOrMissing(doc bson.Raw, key string) bool {
	v, err := doc.LookupErr(key)
	if err != nil {
		return true
	}
	b, ok := v.BooleanOK()
	return ok && !b
}

// condOp is an operator of the supported subset.
type condOp int

const (
	opEq condOp = iota
	opNe
	opIn
	opExists
)

// cond is one condition on a top-level field.
type cond struct {
	field  string
	op     condOp
	vals   []bson.RawValue // opEq, opNe: one; opIn: any number
	exists bool            // opExists
}

// parseFilter splits a filter into {_id: X} and the other conditions. It
// reports false unless the filter has a top-level _id equal to a string or
// ObjectID, at least one other condition, and nothing outside the subset.
func parseFilter(f bson.Raw) (id bson.RawValue, conds []cond, ok bool) {
	elems, err := f.Elements()
	if err != nil {
		return id, nil, false
	}
	seen := make(map[string]bool, len(elems))
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		if seen[key] {
			return id, nil, false
		}
		seen[key] = true
		if key == "_id" {
			if v.Type != bson.TypeString && v.Type != bson.TypeObjectID {
				return id, nil, false
			}
			id = v
			continue
		}
		if key == "" || strings.HasPrefix(key, "$") || strings.Contains(key, ".") {
			return id, nil, false
		}
		if v.Type != bson.TypeEmbeddedDocument {
			if !isScalar(v) {
				return id, nil, false
			}
			conds = append(conds, cond{field: key, op: opEq, vals: []bson.RawValue{v}})
			continue
		}
		ops, err := v.Document().Elements()
		if err != nil || len(ops) == 0 {
			return id, nil, false // {} or a document compared as a whole
		}
		for _, o := range ops {
			ov := o.Value()
			switch o.Key() {
			case "$eq", "$ne":
				if !isScalar(ov) {
					return id, nil, false
				}
				op := opEq
				if o.Key() == "$ne" {
					op = opNe
				}
				conds = append(conds, cond{field: key, op: op, vals: []bson.RawValue{ov}})
			case "$in":
				arr, ok := ov.ArrayOK()
				if !ok {
					return id, nil, false
				}
				vals, err := arr.Values()
				if err != nil {
					return id, nil, false
				}
				for _, x := range vals {
					if !isScalar(x) {
						return id, nil, false
					}
				}
				conds = append(conds, cond{field: key, op: opIn, vals: vals})
			case "$exists":
				b, ok := ov.BooleanOK()
				if !ok {
					return id, nil, false
				}
				conds = append(conds, cond{field: key, op: opExists, exists: b})
			default:
				return id, nil, false
			}
		}
	}
	if id.Type == 0 || len(conds) == 0 {
		return id, nil, false
	}
	return id, conds, true
}

// isScalar reports whether v is a value the evaluator compares exactly: a
// string, bool, null, ObjectID, date, int32, int64 or a double other than NaN.
func isScalar(v bson.RawValue) bool {
	switch v.Type {
	case bson.TypeString, bson.TypeBoolean, bson.TypeNull, bson.TypeObjectID,
		bson.TypeDateTime, bson.TypeInt32, bson.TypeInt64:
		return true
	case bson.TypeDouble:
		return !math.IsNaN(v.Double())
	}
	return false
}

// matches evaluates conds on doc. known is false when the evaluator cannot
// decide with certainty; the command must then be forwarded untouched.
func matches(conds []cond, doc bson.Raw) (match, known bool) {
	match = true
	for _, c := range conds {
		m, k := c.eval(doc)
		if !k {
			return false, false
		}
		match = match && m
	}
	return match, true
}

func (c cond) eval(doc bson.Raw) (match, known bool) {
	v, err := doc.LookupErr(c.field)
	present := err == nil
	if err != nil && !errors.Is(err, bsoncore.ErrElementNotFound) {
		return false, false
	}
	if c.op == opExists {
		return present == c.exists, true
	}
	// A stored array matches an element-wise; an embedded document, NaN,
	// undefined and the rest are left to FerretDB.
	if present && v.Type != bson.TypeNull && !isScalar(v) {
		return false, false
	}
	anyEq := func() (bool, bool) {
		for _, want := range c.vals {
			eq, k := scalarEqual(want, v, present)
			if !k {
				return false, false
			}
			if eq {
				return true, true
			}
		}
		return false, true
	}
	eq, k := anyEq()
	if !k {
		return false, false
	}
	if c.op == opNe {
		return !eq, true
	}
	return eq, true
}

// scalarEqual compares the filter's value want with the stored value got
// (absent when !present) as MongoDB's equality match does: null matches null
// and a missing field, numbers compare by value across types, other types
// match only their own type.
func scalarEqual(want, got bson.RawValue, present bool) (eq, known bool) {
	if want.Type == bson.TypeNull {
		return !present || got.Type == bson.TypeNull, true
	}
	if !present || got.Type == bson.TypeNull {
		return false, true
	}
	if want.IsNumber() && got.IsNumber() {
		return numbersEqual(want, got)
	}
	return want.Type == got.Type && bytes.Equal(want.Value, got.Value), true
}

// maxExactInt is the largest magnitude below which every int64 is a double.
const maxExactInt = 1 << 53

func numbersEqual(a, b bson.RawValue) (eq, known bool) {
	if a.Type != bson.TypeDouble && b.Type != bson.TypeDouble {
		return a.AsInt64() == b.AsInt64(), true
	}
	if a.Type == bson.TypeDouble && b.Type == bson.TypeDouble {
		return a.Double() == b.Double(), true
	}
	i, f := a, b
	if a.Type == bson.TypeDouble {
		i, f = b, a
	}
	n := i.AsInt64()
	if n > maxExactInt || n < -maxExactInt {
		return false, false
	}
	return float64(n) == f.Double(), true
}

// noMatchFilter is {_id: <a random ObjectID>}: FerretDB pushes it down, and no
// stored document has that _id (a chance of 2^-96 per use).
func noMatchFilter() bson.Raw {
	var oid [12]byte
	_, _ = rand.Read(oid[:]) // crypto/rand.Read never fails (Go 1.24+)
	return bson.Raw(bsoncore.BuildDocument(nil, bsoncore.AppendObjectIDElement(nil, "_id", oid)))
}

// idFilter is {_id: id}.
func idFilter(id bson.RawValue) bson.Raw {
	el := bsoncore.AppendHeader(nil, bsoncore.Type(id.Type), "_id")
	return bson.Raw(bsoncore.BuildDocument(nil, append(el, id.Value...)))
}

// probeID is the requestID of the proxy's own find {_id} on a FerretDB
// connection; its reply is read before anything else is sent there.
const probeID int32 = -3

// narrow runs holding n.id's lane: it fetches the document {_id: n.id}
// through pc's FerretDB connection and returns the request to forward in place
// of the client's, or nil to forward the client's request untouched. An error
// means pc's FerretDB connection is unusable.
func (s *Server) narrow(pc *proxyConn, n *narrowable) (message, error) {
	probe, err := newOpMsg(probeID, 0, bson.D{
		{Key: "find", Value: n.coll},
		{Key: "filter", Value: idFilter(n.id)},
		{Key: "limit", Value: int32(2)},
		{Key: "batchSize", Value: int32(2)},
		{Key: "singleBatch", Value: true},
		{Key: "$db", Value: n.db},
	})
	if err != nil {
		return nil, nil
	}
	if _, err := pc.backend.Write(probe); err != nil {
		return nil, fmt.Errorf("to ferretdb: %w", err)
	}
	rep, err := readMessage(pc.br)
	if err != nil {
		return nil, fmt.Errorf("from ferretdb: %w", err)
	}
	if rep.responseTo() != probeID || rep.moreToCome() {
		return nil, fmt.Errorf("from ferretdb: reply to request %d, want the probe's %d", rep.responseTo(), probeID)
	}
	body, err := opMsgBody(rep)
	if err != nil {
		return nil, nil
	}
	if ok, _ := body.Lookup("ok").AsFloat64OK(); ok != 1 {
		return nil, nil // let FerretDB answer the command itself
	}
	if id, ok := body.Lookup("cursor", "id").AsInt64OK(); !ok || id != 0 {
		return nil, nil
	}
	batch, ok := body.Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		return nil, nil
	}
	docs, err := batch.Values()
	if err != nil || len(docs) > 1 {
		return nil, nil
	}
	filter := idFilter(n.id)
	if len(docs) == 1 {
		doc, ok := docs[0].DocumentOK()
		if !ok {
			return nil, nil
		}
		match, known := matches(n.conds, doc)
		if !known {
			return nil, nil
		}
		if !match {
			filter = noMatchFilter()
		}
	}
	req, err := n.rebuild(filter)
	if err != nil {
		return nil, nil
	}
	s.narrowed.Add(1)
	return req, nil
}

var debugHook func(string, ...any)

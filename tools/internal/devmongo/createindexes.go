package devmongo

import (
	"encoding/binary"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// createIndexes of indexes that already exist: MongoDB accepts a request for
// an index that exists with the same name, key and options, and does nothing
// for it ("all indexes already exist"). FerretDB v1.24 means to do the same,
// but drops such an index from its work list by its position in the request
// (slices.Delete(filtered, i, i+1)) after earlier drops have shifted the list:
// with two or more existing indexes in one request it deletes the wrong entry
// or panics ("slice bounds out of range") and closes the connection. Every
// process that opens a store on an existing database after another one
// created its indexes could hit this.
//
// So, running alone (createIndexes is exclusive, lanes.go), the proxy lists the collection's indexes itself
// and takes every requested index that exists identically out of the request
// before FerretDB sees it; when none is left it answers as MongoDB does
// without forwarding. A request naming an existing index with the same key
// but other options gets MongoDB's IndexOptionsConflict. Anything the proxy
// cannot decide with certainty (an index option it does not compare, a
// listing that fails or does not fit one batch) goes to FerretDB untouched.

// indexProbeID is the requestID of the proxy's own listIndexes on a FerretDB
// connection; its reply is read before anything else is sent there.
const indexProbeID int32 = -4

// indexRequest is a createIndexes command the proxy may filter.
type indexRequest struct {
	db, coll string
	indexes  []bson.Raw // the requested index specifications
	// rebuild returns the request with its indexes replaced by keep.
	rebuild func(keep []bson.Raw) (message, error)
}

// comparedOptions are the index options whose values decide whether a
// requested index equals an existing one; "v" and "background" do not
// (MongoDB ignores both when comparing). A requested index with any other
// option is not filtered.
var comparedOptions = []string{"unique", "sparse", "hidden", "expireAfterSeconds"}

// parseCreateIndexes recognizes a createIndexes whose indexes are in the body.
func parseCreateIndexes(req message) (*indexRequest, bool) {
	if req.opCode() != opMsg || req.flags() != 0 {
		return nil, false
	}
	secs, err := parseSections(req)
	if err != nil || len(secs) != 1 || secs[0].kind != 0 {
		return nil, false
	}
	body := secs[0].docs[0]
	first, err := body.IndexErr(0)
	if err != nil || first.Key() != "createIndexes" {
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
	arr, ok := body.Lookup("indexes").ArrayOK()
	if !ok {
		return nil, false
	}
	vals, err := arr.Values()
	if err != nil || len(vals) == 0 {
		return nil, false
	}
	r := &indexRequest{db: db, coll: coll}
	for _, v := range vals {
		spec, ok := v.DocumentOK()
		if !ok {
			return nil, false
		}
		r.indexes = append(r.indexes, spec)
	}
	r.rebuild = func(keep []bson.Raw) (message, error) {
		idx, a := bsoncore.AppendArrayStart(nil)
		for i, spec := range keep {
			a = bsoncore.AppendDocumentElement(a, fmt.Sprint(i), spec)
		}
		a, err := bsoncore.AppendArrayEnd(a, idx)
		if err != nil {
			return nil, err
		}
		b, err := withField(body, "indexes", bson.TypeArray, a)
		if err != nil {
			return nil, err
		}
		return buildOpMsg(req.requestID(), req.flags(), []section{{kind: 0, docs: []bson.Raw{b}}}), nil
	}
	return r, true
}

// filterIndexes runs alone (an exclusive command): it lists r's collection's indexes
// through pc's FerretDB connection and returns either the request to forward in
// place of the client's (nil: forward it untouched) or, when the proxy answers
// itself, the reply to send back to the client. An error means pc's FerretDB
// connection is unusable.
func (s *Server) filterIndexes(pc *proxyConn, req message, r *indexRequest) (forward, reply message, err error) {
	probe, err := newOpMsg(indexProbeID, 0, bson.D{
		{Key: "listIndexes", Value: r.coll},
		{Key: "$db", Value: r.db},
	})
	if err != nil {
		return nil, nil, nil
	}
	if _, err := pc.backend.Write(probe); err != nil {
		return nil, nil, fmt.Errorf("to ferretdb: %w", err)
	}
	rep, err := readMessage(pc.br)
	if err != nil {
		return nil, nil, fmt.Errorf("from ferretdb: %w", err)
	}
	if rep.responseTo() != indexProbeID || rep.moreToCome() {
		return nil, nil, fmt.Errorf("from ferretdb: reply to request %d, want the index listing's %d", rep.responseTo(), indexProbeID)
	}
	body, err := opMsgBody(rep)
	if err != nil {
		return nil, nil, nil
	}
	if ok, _ := body.Lookup("ok").AsFloat64OK(); ok != 1 {
		return nil, nil, nil // no such collection (yet): nothing exists
	}
	if id, ok := body.Lookup("cursor", "id").AsInt64OK(); !ok || id != 0 {
		return nil, nil, nil
	}
	batch, ok := body.Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		return nil, nil, nil
	}
	vals, err := batch.Values()
	if err != nil {
		return nil, nil, nil
	}
	existing := make(map[string]bson.Raw, len(vals))
	for _, v := range vals {
		spec, ok := v.DocumentOK()
		if !ok {
			return nil, nil, nil
		}
		name, ok := spec.Lookup("name").StringValueOK()
		if !ok {
			return nil, nil, nil
		}
		existing[name] = spec
	}

	var keep []bson.Raw
	for _, want := range r.indexes {
		name, ok := want.Lookup("name").StringValueOK()
		if !ok {
			return nil, nil, nil
		}
		have, ok := existing[name]
		if !ok {
			keep = append(keep, want)
			continue
		}
		same, known := sameIndex(want, have)
		switch {
		case !known:
			return nil, nil, nil
		case same == indexIdentical:
			continue
		case same == indexOptionsDiffer:
			reply, err := commandError(req.requestID(), 85, "IndexOptionsConflict", fmt.Sprintf(
				"An equivalent index already exists with the same name but different options. Requested index: %s, existing index: %s", want, have))
			if err != nil {
				return nil, nil, nil
			}
			return nil, reply, nil
		default: // another key under that name: FerretDB answers IndexKeySpecsConflict
			keep = append(keep, want)
		}
	}
	if len(keep) == len(r.indexes) {
		return nil, nil, nil
	}
	if len(keep) == 0 {
		n := int32(len(existing))
		reply, err := newOpMsg(0, 0, bson.D{
			{Key: "numIndexesBefore", Value: n},
			{Key: "numIndexesAfter", Value: n},
			{Key: "note", Value: "all indexes already exist"},
			{Key: "ok", Value: 1.0},
		})
		if err != nil {
			return nil, nil, nil
		}
		setResponseTo(reply, req.requestID())
		return nil, reply, nil
	}
	forward, err = r.rebuild(keep)
	if err != nil {
		return nil, nil, nil
	}
	return forward, nil, nil
}

// indexMatch says how a requested index compares with an existing one of the
// same name.
type indexMatch int

const (
	indexOtherKey      indexMatch = iota // a different key
	indexOptionsDiffer                   // the same key, other options
	indexIdentical                       // the same key and options
)

// sameIndex compares a requested index specification with an existing one of
// the same name; known is false when the request holds something the proxy
// does not compare.
func sameIndex(want, have bson.Raw) (m indexMatch, known bool) {
	elems, err := want.Elements()
	if err != nil {
		return 0, false
	}
	for _, e := range elems {
		switch k := e.Key(); k {
		case "key", "name", "v", "background":
		default:
			if !isCompared(k) {
				return 0, false
			}
		}
	}
	wk, ok1 := want.Lookup("key").DocumentOK()
	hk, ok2 := have.Lookup("key").DocumentOK()
	if !ok1 || !ok2 {
		return 0, false
	}
	eq, known := sameKey(wk, hk)
	if !known {
		return 0, false
	}
	if !eq {
		return indexOtherKey, true
	}
	for _, o := range comparedOptions {
		eq, known := sameOption(want.Lookup(o), have.Lookup(o))
		if !known {
			return 0, false
		}
		if !eq {
			return indexOptionsDiffer, true
		}
	}
	return indexIdentical, true
}

func isCompared(option string) bool {
	for _, o := range comparedOptions {
		if o == option {
			return true
		}
	}
	return false
}

// sameKey compares two key patterns: the same fields in the same order, each
// with the same direction (numbers compared by value, 1 == 1.0) or the same
// index type ("text", "hashed", …).
func sameKey(a, b bson.Raw) (eq, known bool) {
	ae, err1 := a.Elements()
	be, err2 := b.Elements()
	if err1 != nil || err2 != nil {
		return false, false
	}
	if len(ae) != len(be) {
		return false, true
	}
	for i := range ae {
		if ae[i].Key() != be[i].Key() {
			return false, true
		}
		av, bv := ae[i].Value(), be[i].Value()
		if as, ok := av.StringValueOK(); ok {
			bs, ok := bv.StringValueOK()
			if !ok || as != bs {
				return false, true
			}
			continue
		}
		af, ok1 := av.AsFloat64OK()
		bf, ok2 := bv.AsFloat64OK()
		if !ok1 || !ok2 {
			return false, false
		}
		if af != bf {
			return false, true
		}
	}
	return true, true
}

// sameOption compares one option of two index specifications, a missing
// option being false (booleans) or absent (numbers).
func sameOption(a, b bson.RawValue) (eq, known bool) {
	if a.Type == 0 && b.Type == 0 {
		return true, true
	}
	if ab, bb, ok := asBools(a, b); ok {
		return ab == bb, true
	}
	if a.Type == 0 || b.Type == 0 {
		return false, true
	}
	af, ok1 := a.AsFloat64OK()
	bf, ok2 := b.AsFloat64OK()
	if !ok1 || !ok2 {
		return false, false
	}
	return af == bf, true
}

// asBools reads a and b as booleans, a missing one as false; ok is false
// unless both are booleans or missing.
func asBools(a, b bson.RawValue) (ab, bb, ok bool) {
	read := func(v bson.RawValue) (bool, bool) {
		if v.Type == 0 {
			return false, true
		}
		return v.BooleanOK()
	}
	ab, ok1 := read(a)
	bb, ok2 := read(b)
	return ab, bb, ok1 && ok2 && (a.Type == bson.TypeBoolean || b.Type == bson.TypeBoolean)
}

// commandError is an OP_MSG reply to requestID with a MongoDB command error.
func commandError(requestID int32, code int32, codeName, msg string) (message, error) {
	m, err := newOpMsg(0, 0, bson.D{
		{Key: "ok", Value: 0.0},
		{Key: "errmsg", Value: msg},
		{Key: "code", Value: code},
		{Key: "codeName", Value: codeName},
	})
	if err != nil {
		return nil, err
	}
	setResponseTo(m, requestID)
	return m, nil
}

// setResponseTo sets a message's responseTo field.
func setResponseTo(m message, id int32) {
	binary.LittleEndian.PutUint32(m[8:12], uint32(id))
}

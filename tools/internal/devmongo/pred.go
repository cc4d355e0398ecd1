package devmongo

import (
	"bytes"
	"errors"
	"math"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The filter evaluator of indexed queries (indexed.go): a conjunction of
// conditions on field paths, evaluated as MongoDB does, arrays included. As in
// narrow.go, whatever it cannot decide with certainty is "unknown", and the
// command then goes to FerretDB untouched.

// predOp is an operator of an indexed query's filter.
type predOp int

const (
	pEq predOp = iota
	pNe
	pIn
	pExists
	pLt
	pLte
	pGt
	pGte
	pType
)

// pred is one condition on a field path.
type pred struct {
	field  string   // dotted, as in the filter
	path   []string // its segments
	op     predOp
	vals   []bson.RawValue // pEq, pNe, the ranges: one; pIn: any number
	exists bool            // pExists
	types  []bson.Type     // pType: any of these
}

// typeAliases are the $type aliases the evaluator accepts ("array" and the
// rest are left to FerretDB).
var typeAliases = map[string][]bson.Type{
	"double":   {bson.TypeDouble},
	"string":   {bson.TypeString},
	"objectId": {bson.TypeObjectID},
	"bool":     {bson.TypeBoolean},
	"date":     {bson.TypeDateTime},
	"null":     {bson.TypeNull},
	"int":      {bson.TypeInt32},
	"long":     {bson.TypeInt64},
}

// rangeOps are the comparison operators.
var rangeOps = map[string]predOp{"$lt": pLt, "$lte": pLte, "$gt": pGt, "$gte": pGte}

// parsePreds parses a filter in the subset: top-level field paths (dotted,
// see parsePath), each equal to a scalar (isScalar) or with operators $eq,
// $ne, $in (of scalars), $exists (a bool), $lt, $lte, $gt, $gte (a non-null
// orderable scalar, see orderable) and $type (an alias of typeAliases). It
// reports false for anything else.
func parsePreds(f bson.Raw) ([]pred, bool) {
	elems, err := f.Elements()
	if err != nil {
		return nil, false
	}
	seen := make(map[string]bool, len(elems))
	var preds []pred
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		if seen[key] {
			return nil, false
		}
		seen[key] = true
		path, ok := parsePath(key)
		if !ok {
			return nil, false
		}
		if v.Type != bson.TypeEmbeddedDocument {
			if !isScalar(v) {
				return nil, false
			}
			preds = append(preds, pred{field: key, path: path, op: pEq, vals: []bson.RawValue{v}})
			continue
		}
		ops, err := v.Document().Elements()
		if err != nil || len(ops) == 0 {
			return nil, false
		}
		for _, o := range ops {
			ov := o.Value()
			p := pred{field: key, path: path}
			switch name := o.Key(); name {
			case "$eq", "$ne":
				if !isScalar(ov) {
					return nil, false
				}
				p.op, p.vals = pEq, []bson.RawValue{ov}
				if name == "$ne" {
					p.op = pNe
				}
			case "$in":
				arr, ok := ov.ArrayOK()
				if !ok {
					return nil, false
				}
				vals, err := arr.Values()
				if err != nil {
					return nil, false
				}
				for _, x := range vals {
					if !isScalar(x) {
						return nil, false
					}
				}
				p.op, p.vals = pIn, vals
			case "$exists":
				b, ok := ov.BooleanOK()
				if !ok {
					return nil, false
				}
				p.op, p.exists = pExists, b
			case "$lt", "$lte", "$gt", "$gte":
				if !orderable(ov) {
					return nil, false
				}
				p.op, p.vals = rangeOps[name], []bson.RawValue{ov}
			case "$type":
				alias, ok := ov.StringValueOK()
				if !ok || typeAliases[alias] == nil {
					return nil, false
				}
				p.op, p.types = pType, typeAliases[alias]
			default:
				return nil, false
			}
			preds = append(preds, p)
		}
	}
	return preds, true
}

// orderable reports whether v is a range operand the evaluator compares: a
// number (not NaN), string, ObjectID, bool or date.
func orderable(v bson.RawValue) bool {
	return v.Type != bson.TypeNull && isScalar(v)
}

// pathValues returns the values path reaches in doc, as MongoDB's matcher
// sees them: an array met before the last segment is traversed (its
// documents' fields), an array at the end gives its elements and itself.
// sawArray reports an array on the way; known is false where the evaluator
// does not follow MongoDB (an array directly inside an array before the end).
func pathValues(doc bson.Raw, path []string) (vals []bson.RawValue, sawArray, known bool) {
	known = true
	var walk func(d bson.Raw, path []string)
	walk = func(d bson.Raw, path []string) {
		if !known {
			return
		}
		v, err := d.LookupErr(path[0])
		if err != nil {
			if !errors.Is(err, bsoncore.ErrElementNotFound) {
				known = false
			}
			return
		}
		last := len(path) == 1
		switch v.Type {
		case bson.TypeArray:
			sawArray = true
			elems, err := v.Array().Values()
			if err != nil {
				known = false
				return
			}
			if last {
				vals = append(vals, elems...)
				vals = append(vals, v)
				return
			}
			for _, el := range elems {
				switch el.Type {
				case bson.TypeEmbeddedDocument:
					walk(el.Document(), path[1:])
				case bson.TypeArray:
					known = false
					return
				}
			}
		case bson.TypeEmbeddedDocument:
			if last {
				vals = append(vals, v)
				return
			}
			walk(v.Document(), path[1:])
		default:
			if last {
				vals = append(vals, v)
			}
		}
	}
	walk(doc, path)
	return vals, sawArray, known
}

// matchAll evaluates preds on doc.
func matchAll(preds []pred, doc bson.Raw) (match, known bool) {
	match = true
	for _, p := range preds {
		m, k := p.eval(doc)
		if !k {
			return false, false
		}
		match = match && m
	}
	return match, true
}

func (p pred) eval(doc bson.Raw) (match, known bool) {
	vals, sawArray, known := pathValues(doc, p.path)
	if !known {
		return false, false
	}
	switch p.op {
	case pExists:
		return (len(vals) > 0) == p.exists, true
	case pEq, pIn, pNe:
		eq, k := anyEqual(p.vals, vals, sawArray)
		if !k {
			return false, false
		}
		return eq != (p.op == pNe), true
	case pType:
		for _, v := range vals {
			for _, t := range p.types {
				if v.Type == t {
					return true, true
				}
			}
		}
		return false, true
	default:
		want := p.vals[0]
		for _, v := range vals {
			c, same, k := compareSameBracket(v, want)
			if !k {
				return false, false
			}
			if !same {
				continue
			}
			if (p.op == pLt && c < 0) || (p.op == pLte && c <= 0) || (p.op == pGt && c > 0) || (p.op == pGte && c >= 0) {
				return true, true
			}
		}
		return false, true
	}
}

// anyEqual reports whether any of wants equals one of the values found: null
// equals null and a missing field; a scalar never equals an array or a
// document. A null wanted where arrays are on the path is left unknown.
func anyEqual(wants, vals []bson.RawValue, sawArray bool) (eq, known bool) {
	for _, want := range wants {
		if want.Type == bson.TypeNull {
			if sawArray {
				return false, false
			}
			if len(vals) == 0 || vals[0].Type == bson.TypeNull {
				return true, true
			}
			continue
		}
		for _, v := range vals {
			if v.Type == bson.TypeArray || v.Type == bson.TypeEmbeddedDocument || v.Type == bson.TypeNull {
				continue
			}
			if !isScalar(v) {
				if v.Type == bson.TypeDouble { // NaN equals no number
					continue
				}
				return false, false
			}
			e, k := scalarEqual(want, v, true)
			if !k {
				return false, false
			}
			if e {
				return true, true
			}
		}
	}
	return false, true
}

// bracket is MongoDB's canonical type order of the types the evaluator
// compares; 0 for the others.
func bracket(t bson.Type) int {
	switch t {
	case bson.TypeNull:
		return 1
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		return 2
	case bson.TypeString:
		return 3
	case bson.TypeObjectID:
		return 7
	case bson.TypeBoolean:
		return 8
	case bson.TypeDateTime:
		return 9
	}
	return 0
}

// compareSameBracket compares a stored value with a range operand: same is
// false when they are of different types (a range matches only its own),
// known false for what the evaluator does not compare.
func compareSameBracket(v, want bson.RawValue) (c int, same, known bool) {
	switch v.Type {
	case bson.TypeArray, bson.TypeEmbeddedDocument, bson.TypeNull:
		return 0, false, true // arrays are matched by their elements
	}
	bv, bw := bracket(v.Type), bracket(want.Type)
	if bv == 0 {
		return 0, false, false // decimals, symbols, MinKey...: left to FerretDB
	}
	if bv != bw {
		return 0, false, true
	}
	c, known = compareValues(v, want)
	return c, true, known
}

// compareValues orders two values of the same bracket (numbers, strings,
// ObjectIDs, bools, dates, nulls).
func compareValues(a, b bson.RawValue) (int, bool) {
	switch a.Type {
	case bson.TypeNull:
		return 0, true
	case bson.TypeString:
		return strings.Compare(a.StringValue(), b.StringValue()), true
	case bson.TypeObjectID:
		ao, bo := a.ObjectID(), b.ObjectID()
		return bytes.Compare(ao[:], bo[:]), true
	case bson.TypeBoolean:
		ab, bb := a.Boolean(), b.Boolean()
		switch {
		case ab == bb:
			return 0, true
		case !ab:
			return -1, true
		}
		return 1, true
	case bson.TypeDateTime:
		return cmpInt(a.DateTime(), b.DateTime()), true
	}
	return compareNumbers(a, b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareNumbers orders two numbers exactly; NaN and an int64 beyond 2^53
// beside a double are unknown.
func compareNumbers(a, b bson.RawValue) (int, bool) {
	if a.Type != bson.TypeDouble && b.Type != bson.TypeDouble {
		return cmpInt(a.AsInt64(), b.AsInt64()), true
	}
	fa, fb, ok := asFloats(a, b)
	if !ok {
		return 0, false
	}
	switch {
	case fa < fb:
		return -1, true
	case fa > fb:
		return 1, true
	}
	return 0, true
}

func asFloats(a, b bson.RawValue) (fa, fb float64, ok bool) {
	conv := func(v bson.RawValue) (float64, bool) {
		if v.Type == bson.TypeDouble {
			f := v.Double()
			return f, !math.IsNaN(f)
		}
		n := v.AsInt64()
		return float64(n), n <= maxExactInt && n >= -maxExactInt
	}
	fa, oka := conv(a)
	fb, okb := conv(b)
	return fa, fb, oka && okb
}

package devmongo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
)

// Mirrored indexes: FerretDB v1.24 creates an SQLite index for every MongoDB
// index (on _ferretdb_sjson->'field'), but its queries never use one: any
// filter other than {_id: X} reads and decodes the whole table. So a query that
// MongoDB answers from an index, such as the orchestrator's scan for queued
// jobs, costs time in proportion to the collection.
//
// idIndexer therefore gives each collection's table, beside FerretDB's own, a
// mirror of every MongoDB index it has: an SQLite index on one key expression
// per field (keyExpr). The proxy finds candidate documents through it
// (indexed.go) and checks the whole filter on them itself. A key expression
// maps a field to its SQL value (->>), and every value an SQL comparison could
// miss to a sentinel that every candidate query includes: a non-empty array on
// the field's path (MongoDB matches an array by its elements), so the
// candidates are always a superset of the matching documents. The mirrors are
// kept in step with the MongoDB indexes (after createIndexes, dropIndexes and
// at the first command on a collection); FerretDB does not know them.

// mirrorPrefix starts the names of mirrored indexes (idindex.go: FerretDB never
// names a table or index _ferretdb_…).
const mirrorPrefix = "_ferretdb_aigw_mx_"

// Sentinel keys: SQLite orders NULL < numbers < text < blobs, and ->> never
// yields a blob, so no field value equals one of these.
const (
	keyEmptyArray = `X'00'` // an empty array on the path
	keyArray      = `X'01'` // a non-empty array on the path
	keyObject     = `X'02'` // an embedded document at the end of the path
)

// safeSegment is a path segment a mirror accepts: no numeric array index, no
// $, nothing that would need quoting in a JSON path.
var safeSegment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parsePath splits a dotted field name; false unless every segment is safe.
func parsePath(field string) ([]string, bool) {
	segs := strings.Split(field, ".")
	for _, s := range segs {
		if !safeSegment.MatchString(s) {
			return nil, false
		}
	}
	return segs, true
}

// jsonPath is the JSON path of the first n segments.
func jsonPath(segs []string) string {
	var b strings.Builder
	b.WriteString(`'$`)
	for _, s := range segs {
		b.WriteString(`."`)
		b.WriteString(s)
		b.WriteString(`"`)
	}
	b.WriteString(`'`)
	return b.String()
}

// keyExpr is the mirror's key expression for a field path: the field's SQL
// value; NULL when the path is missing or JSON null (or goes through a scalar);
// keyObject for an embedded document at its end; keyArray or keyEmptyArray for
// the first array met along it. Candidate queries must use exactly this text.
func keyExpr(segs []string) string {
	return keyLevel(segs, 1)
}

func keyLevel(segs []string, n int) string {
	p := jsonPath(segs[:n])
	arr := fmt.Sprintf(`CASE json_array_length(%[1]s, %[2]s) WHEN 0 THEN %[3]s ELSE %[4]s END`, sjsonColumn, p, keyEmptyArray, keyArray)
	if n == len(segs) {
		return fmt.Sprintf(`(CASE json_type(%[1]s, %[2]s) WHEN 'array' THEN %[3]s WHEN 'object' THEN %[4]s ELSE %[1]s->>%[2]s END)`,
			sjsonColumn, p, arr, keyObject)
	}
	return fmt.Sprintf(`(CASE json_type(%[1]s, %[2]s) WHEN 'object' THEN %[3]s WHEN 'array' THEN %[4]s ELSE NULL END)`,
		sjsonColumn, p, keyLevel(segs, n+1), arr)
}

// sjsonColumn is FerretDB's document column (metadata.DefaultColumn).
const sjsonColumn = "_ferretdb_sjson"

// collInfo is what the proxy knows of a collection's table.
type collInfo struct {
	table string
	// mirrored maps a dotted field name to its path, for every field that
	// leads a mirrored index ("lead") or is in one.
	fields map[string][]string
	lead   map[string]bool
}

// ferretSettings is the part of FerretDB's collection settings (the settings
// column of _ferretdb_collections) the mirrors follow.
type ferretSettings struct {
	Indexes []struct {
		Name string `json:"name"`
		Key  []struct {
			Field string `json:"field"`
		} `json:"key"`
		Unique bool `json:"unique"`
	} `json:"indexes"`
	CappedSize      int64 `json:"cappedSize"`
	CappedDocuments int64 `json:"cappedDocuments"`
}

// mirror makes the table's mirrored indexes match the collection's MongoDB
// indexes (st, as FerretDB stores them), and returns what queries need.
// A capped collection gets none: its order is its record ids'.
func mirror(ctx context.Context, h *sql.DB, table string, st ferretSettings) (*collInfo, error) {
	info := &collInfo{table: table, fields: map[string][]string{}, lead: map[string]bool{}}
	want := map[string]string{} // index name → CREATE INDEX statement
	if st.CappedSize == 0 && st.CappedDocuments == 0 {
		for _, ix := range st.Indexes {
			if len(ix.Key) == 0 || (len(ix.Key) == 1 && ix.Key[0].Field == "_id") {
				continue // _id: FerretDB's lookups, idindex.go
			}
			exprs := make([]string, 0, len(ix.Key))
			paths := make([][]string, 0, len(ix.Key))
			for _, k := range ix.Key {
				segs, ok := parsePath(k.Field)
				if !ok {
					exprs = nil
					break
				}
				exprs = append(exprs, keyExpr(segs))
				paths = append(paths, segs)
			}
			if exprs == nil {
				continue
			}
			h := fnv.New64a()
			for _, k := range ix.Key {
				h.Write([]byte(k.Field))
				h.Write([]byte{0})
			}
			name := fmt.Sprintf("%s%s_%016x", mirrorPrefix, table, h.Sum64())
			want[name] = fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (%s)`, quoteIdent(name), quoteIdent(table), strings.Join(exprs, ", "))
			for i, k := range ix.Key {
				info.fields[k.Field] = paths[i]
			}
			info.lead[ix.Key[0].Field] = true
		}
	}

	rows, err := h.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND substr(name, 1, ?) = ?`,
		table, len(mirrorPrefix), mirrorPrefix)
	if err != nil {
		return nil, err
	}
	var stale []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if _, ok := want[name]; ok {
			delete(want, name) // exists already
		} else {
			stale = append(stale, name)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, name := range stale {
		if _, err := h.ExecContext(ctx, `DROP INDEX IF EXISTS `+quoteIdent(name)); err != nil {
			return nil, err
		}
	}
	for _, q := range want {
		if _, err := h.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// hollowSuffix ends the SQL of a FerretDB index that hollow has emptied.
const hollowSuffix = " WHERE 0"

// hollow empties FerretDB's own SQLite indexes of the table that enforce
// nothing (not unique): FerretDB's queries never use them (the proxy answers
// from the mirrors), yet every write of a document updates each of them, a
// page of its B-tree journaled and written to the WAL, and each in every
// UPDATE statement FerretDB prepares anew. Each one becomes a
// partial index WHERE 0 under the same name and on the same columns: it holds
// no entry, SQLite skips it on writes, and FerretDB can still drop it
// (dropIndexes, which names it) and list it (from its own settings). Unique
// indexes, _id's among them, are left as they are: they enforce uniqueness.
// It runs while the command that asks runs alone (lanes.go).
func hollow(ctx context.Context, h *sql.DB, table string, st ferretSettings) error {
	for _, ix := range st.Indexes {
		if ix.Unique || ix.Name == "" {
			continue
		}
		name := table + "_" + ix.Name
		var def sql.NullString
		err := h.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?`, table, name).Scan(&def)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (!def.Valid || strings.Contains(strings.ToUpper(def.String), " WHERE "))) {
			continue // none, hollow already (or not one FerretDB made as we know it)
		}
		if err != nil {
			return err
		}
		if err := replaceIndex(ctx, h, name, def.String+hollowSuffix); err != nil {
			return fmt.Errorf("hollow index %s: %w", name, err)
		}
	}
	return nil
}

// replaceIndex drops index name and creates it again with create, in one
// transaction.
func replaceIndex(ctx context.Context, h *sql.DB, name, create string) error {
	tx, err := h.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DROP INDEX `+quoteIdent(name)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return err
	}
	return tx.Commit()
}

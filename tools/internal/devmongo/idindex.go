package devmongo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // FerretDB's own SQLite driver, "sqlite"
)

// FerretDB v1.24's SQLite backend looks a document up by _id with
//
//	WHERE _ferretdb_sjson->'$._id' = ?
//
// (find {_id}, and every update and delete, which write back by _id), but
// indexes _id as _ferretdb_sjson->"_id". SQLite matches an index to a query
// by the expression's text, so neither query uses that index: each one scans
// the whole table, and an update {_id} costs time in proportion to the
// collection's size (1 ms at 200 documents, 12 ms at 5,000, 40 ms at 20,000).
//
// idIndexer gives each collection's table a second index, on exactly the
// expression FerretDB queries, by writing to the database file directly
// (running alone, lanes.go, so FerretDB is not executing anything). FerretDB does
// not know this index: it does not list it, and it disappears with the table
// when the collection or database is dropped. Its name starts with
// _ferretdb_, a prefix FerretDB never gives a table or one of its indexes.

// idColumn is FerretDB's expression for _id in its SQL (metadata.IDColumn).
const idColumn = `_ferretdb_sjson->'$._id'`

// idIndexer ensures the _id expression index on the tables of the collections
// that commands touch. It creates and drops indexes only while the command
// that asks runs alone (exclusive, lanes.go); queries use its handles beside
// other commands.
type idIndexer struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	dbs    map[string]*sql.DB         // open database files, by database name
	done   map[string]map[string]bool // database → collections indexed
	failed map[string]bool            // "db.coll" whose indexing failed (logged once)
	// infos: database → collection → its table and mirrored indexes
	// (mirror.go); absent where mirroring failed.
	infos map[string]map[string]*collInfo
}

func newIDIndexer(dir string, log *slog.Logger) *idIndexer {
	return &idIndexer{dir: dir, log: log, dbs: map[string]*sql.DB{}, done: map[string]map[string]bool{}, failed: map[string]bool{},
		infos: map[string]map[string]*collInfo{}}
}

// collection returns what is known of a collection whose indexes are mirrored,
// and its database file; nil when there is none (yet).
func (x *idIndexer) collection(db, coll string) (*collInfo, *sql.DB) {
	x.mu.Lock()
	defer x.mu.Unlock()
	info := x.infos[db][coll]
	if info == nil {
		return nil, nil
	}
	return info, x.dbs[db]
}

// resync makes the mirrors of coll's indexes follow a change of its indexes.
func (x *idIndexer) resync(ctx context.Context, db, coll string) {
	x.forget(db, coll)
	x.ensure(ctx, db, coll)
}

// validName is a database or collection name the indexer will look up: FerretDB
// rejects names with these characters anyway.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/\\.\x00$") && len(s) < 256
}

// ensure makes sure the collection's table, if it exists, has the index. It
// is best-effort: failures are logged, and FerretDB works as before.
func (x *idIndexer) ensure(ctx context.Context, db, coll string) {
	if !validName(db) || coll == "" || strings.ContainsRune(coll, 0) {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done[db][coll] || x.failed[db+"."+coll] {
		return
	}
	created, err := x.create(ctx, db, coll)
	if err != nil {
		x.failed[db+"."+coll] = true
		x.log.Warn("devmongo: cannot index _id; lookups by _id scan the collection", "db", db, "collection", coll, "err", err)
		return
	}
	if !created {
		return // no such collection (yet)
	}
	if x.done[db] == nil {
		x.done[db] = map[string]bool{}
	}
	x.done[db][coll] = true
}

// create creates the index; it reports false when the collection does not exist.
func (x *idIndexer) create(ctx context.Context, db, coll string) (bool, error) {
	h := x.dbs[db]
	if h == nil {
		path := filepath.Join(x.dir, db+".sqlite")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		// mode=rw: never create a file FerretDB has not created.
		u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=rw&_pragma=busy_timeout(10000)"}
		var err error
		if h, err = sql.Open("sqlite", u.String()); err != nil {
			return false, err
		}
		h.SetMaxOpenConns(1)
		x.dbs[db] = h
	}
	var table, settings string
	err := h.QueryRowContext(ctx, `SELECT table_name, settings FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table, &settings)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return false, nil // a database file FerretDB has not set up yet
		}
		return false, err
	}
	q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (%s)`, quoteIdent("_ferretdb_aigw_id_"+table), quoteIdent(table), idColumn)
	if _, err := h.ExecContext(ctx, q); err != nil {
		return false, err
	}
	var st ferretSettings
	if err := json.Unmarshal([]byte(settings), &st); err != nil {
		x.log.Warn("devmongo: cannot read collection settings; queries scan the collection", "db", db, "collection", coll, "err", err)
		return true, nil
	}
	info, err := mirror(ctx, h, table, st)
	if err != nil {
		// Queries on this collection are left to FerretDB, as before.
		x.log.Warn("devmongo: cannot mirror indexes; queries scan the collection", "db", db, "collection", coll, "err", err)
		return true, nil
	}
	if x.infos[db] == nil {
		x.infos[db] = map[string]*collInfo{}
	}
	x.infos[db][coll] = info
	if err := hollow(ctx, h, table, st); err != nil {
		// Writes keep updating FerretDB's indexes, as before.
		x.log.Warn("devmongo: cannot hollow FerretDB's indexes; writes update them", "db", db, "collection", coll, "err", err)
	}
	return true, nil
}

// ready reports whether commands on coll need no more of ensure: its index
// is in place, indexing it failed, or the names are ones ensure skips.
func (x *idIndexer) ready(db, coll string) bool {
	if !validName(db) || coll == "" || strings.ContainsRune(coll, 0) {
		return true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.done[db][coll] || x.failed[db+"."+coll]
}

// sqliteSidecars are the files SQLite keeps beside a database file.
var sqliteSidecars = []string{"-wal", "-shm", "-journal"}

// dropFiles removes what is left of a dropped database: FerretDB removes the
// database file, but a WAL (often tens of MB after a bench) and its index
// stay behind when another connection had the file open, e.g. a client's
// cursor. Left there, a WAL would also be replayed into a new database of the
// same name. It runs alone (dropDatabase is exclusive).
func (x *idIndexer) dropFiles(db string) {
	if !validName(db) {
		return
	}
	base := filepath.Join(x.dir, db+".sqlite")
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		return // not dropped, or not ours to judge
	}
	for _, suffix := range sqliteSidecars {
		if err := os.Remove(base + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			x.log.Warn("devmongo: cannot remove a dropped database's file", "file", base+suffix, "err", err)
		}
	}
}

// removeOrphans removes, before FerretDB opens the directory, SQLite's side
// files whose database file is gone (dropped by an earlier version of this
// program, which left them). It returns how many bytes it freed.
func removeOrphans(dir string, log *slog.Logger) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var freed int64
	for _, e := range entries {
		name := e.Name()
		for _, suffix := range sqliteSidecars {
			base, ok := strings.CutSuffix(name, ".sqlite"+suffix)
			if !ok || !e.Type().IsRegular() {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, base+".sqlite")); !errors.Is(err, os.ErrNotExist) {
				continue
			}
			info, err := e.Info()
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				log.Warn("devmongo: cannot remove a dropped database's file", "file", name, "err", err)
				continue
			}
			if err == nil {
				freed += info.Size()
			}
		}
	}
	return freed
}

// forget is called after a command that may drop or rename collections: the
// next command on one of them checks its table again. An empty coll forgets
// the whole database and closes its file (dropDatabase removes it).
func (x *idIndexer) forget(db, coll string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.failed {
		if strings.HasPrefix(k, db+".") {
			delete(x.failed, k)
		}
	}
	if coll != "" {
		delete(x.done[db], coll)
		delete(x.infos[db], coll)
		return
	}
	delete(x.done, db)
	delete(x.infos, db)
	if h := x.dbs[db]; h != nil {
		_ = h.Close()
		delete(x.dbs, db)
	}
}

// forgetAll forgets every database.
func (x *idIndexer) forgetAll() {
	x.mu.Lock()
	dbs := make([]string, 0, len(x.dbs)+len(x.done))
	for db := range x.dbs {
		dbs = append(dbs, db)
	}
	for db := range x.done {
		dbs = append(dbs, db)
	}
	x.mu.Unlock()
	for _, db := range dbs {
		x.forget(db, "")
	}
	x.mu.Lock()
	clear(x.failed)
	x.mu.Unlock()
}

// close closes the database files.
func (x *idIndexer) close() { x.forgetAll() }

// quoteIdent quotes an SQLite identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

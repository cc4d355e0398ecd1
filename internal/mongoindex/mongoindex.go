// Package mongoindex creates a collection's indexes idempotently: it lists the
// indexes that exist and creates only the missing ones, by name, so a store
// that opens on an existing database (a restarted function, a second process)
// sends no write. Two processes that both find an index missing both ask for
// it; MongoDB accepts a createIndexes of an index that exists with the same
// spec, and so does devmongo, the dev/CI server (FerretDB 1.24 alone drops the
// connection on it; tools/internal/devmongo answers in its place).
package mongoindex

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Ensure creates the indexes of models that coll lacks. Every model must be
// named (options.Index().SetName).
func Ensure(ctx context.Context, coll *mongo.Collection, models ...mongo.IndexModel) error {
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	have := make(map[string]bool, len(specs))
	for _, s := range specs {
		have[s.Name] = true
	}
	var missing []mongo.IndexModel
	for _, m := range models {
		name := indexName(m)
		if name == "" {
			return fmt.Errorf("index of %s on %v has no name", coll.Name(), m.Keys)
		}
		if !have[name] {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := coll.Indexes().CreateMany(ctx, missing); err != nil {
		return fmt.Errorf("create indexes of %s: %w", coll.Name(), err)
	}
	return nil
}

func indexName(m mongo.IndexModel) string {
	if m.Options == nil {
		return ""
	}
	var o options.IndexOptions
	for _, set := range m.Options.List() {
		if err := set(&o); err != nil {
			return ""
		}
	}
	if o.Name == nil {
		return ""
	}
	return *o.Name
}

package agent

import (
	"net/http"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/objstore"

	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
)

// Aliases of the worker's internal types that New and Deps take, so that
// programs outside the worker module (the benchmarks) can build an agent.
type (
	// Config is the worker's configuration (see config.Config).
	Config = config.Config
	// ArtifactStore stores the files runs write (see artifacts.Store).
	ArtifactStore = artifacts.Store
)

// NewArtifactStore returns an artifact store on db; limit caps one run's files.
func NewArtifactStore(db *mongo.Database, limit int64) *ArtifactStore {
	return artifacts.New(db, limit)
}

// NewObjectArtifactStore returns an artifact store in the S3-compatible
// object store; limit caps one run's files.
func NewObjectArtifactStore(obj *objstore.Store, limit int64) *ArtifactStore {
	return artifacts.NewObjects(obj, limit)
}

// AssetCache is the worker's cache of algorithm assets (see assetcache.Cache).
type AssetCache = assetcache.Cache

// NewAssetCache opens an asset cache in dir with a byte budget.
func NewAssetCache(dir string, budget int64, client *http.Client) (*AssetCache, error) {
	return assetcache.New(dir, budget, client)
}

package agent

import (
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/worker/internal/artifacts"
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

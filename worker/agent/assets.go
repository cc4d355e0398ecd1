package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/runner"
)

// prepareRun gets what a run needs before it starts: the files its input
// refers to (fetchInputs) and its algorithm's assets from the worker's cache
// (prepareAssets). It returns the run's input and environment and a cleanup
// to call once the run is over.
func (c *core) prepareRun(ctx context.Context, t Transport, j *job.Job, def *algorithm.Definition, env map[string]string,
	progress func(events.Progress)) (json.RawMessage, map[string]string, func(), *runner.Failure) {
	assetEnv, release, failed := c.prepareAssets(ctx, t, j, def)
	if failed != nil {
		return nil, nil, func() {}, failed
	}
	input, cleanup, failed := c.fetchInputs(ctx, j, progress)
	if failed != nil {
		release()
		return nil, nil, func() {}, failed
	}
	if len(assetEnv) > 0 {
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, assetEnv)
	}
	return input, env, func() { cleanup(); release() }, nil
}

// prepareAssets holds def's assets in the worker's cache, downloading those
// it lacks (a job that waits for a download says so in a progress event),
// and returns AIGW_ASSET_<NAME> for each. A download that fails is the
// attempt's failure (asset_error): retried unless the asset is not what
// its definition says.
func (c *core) prepareAssets(ctx context.Context, t Transport, j *job.Job, def *algorithm.Definition) (map[string]string, func(), *runner.Failure) {
	if len(def.Assets) == 0 {
		return nil, func() {}, nil
	}
	if c.assets == nil {
		return nil, func() {}, &runner.Failure{Code: job.CodeAsset, Message: "this worker has no asset cache (AIGW_CACHE_BYTES)"}
	}
	env := make(map[string]string, len(def.Assets))
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, as := range def.Assets {
		path, rel, err := c.assets.Get(ctx, as, func(as algorithm.Asset) {
			msg := fmt.Sprintf("waiting for asset %s (%d bytes) to download", as.Name, as.Size)
			t.Progress(ctx, events.Progress{Message: msg, At: time.Now().UTC()})
		})
		if err != nil {
			release()
			c.log.Warn("asset not ready", "job_id", j.ID, "asset", as.Name, "err", err)
			if ctx.Err() != nil {
				return nil, func() {}, &runner.Failure{Code: runner.CodeStopped, Message: err.Error()}
			}
			return nil, func() {}, &runner.Failure{Code: job.CodeAsset, Message: err.Error(), Retryable: !errors.Is(err, assetcache.ErrMismatch)}
		}
		releases = append(releases, rel)
		env[algorithm.AssetEnv(as.Name)] = path
	}
	return env, release, nil
}

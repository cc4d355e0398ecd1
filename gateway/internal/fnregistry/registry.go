// Package fnregistry holds the gateway's deployed functions: it validates a
// FunctionDeployment, resolves its image to a local executable, runs it through
// procs, replaces it on update without dropping requests, and persists the
// deployments so a restarted gateway brings its functions back.
package fnregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/gateway/internal/secrets"
)

// Labels the gateway reads, as OpenFaaS names them.
const (
	LabelScaleMin = "com.openfaas.scale.min"
	LabelScaleMax = "com.openfaas.scale.max"
	// MaxReplicas bounds replicas when com.openfaas.scale.max is not set.
	MaxReplicas = 64
	logLines    = 2000
)

// baseEnv is what a function inherits from the gateway's environment; the rest
// comes from its envVars, as in a container.
var baseEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "USER"}

// Options configures a Registry.
type Options struct {
	BinDir       string
	StateDir     string
	ReadyTimeout time.Duration
	// DrainTimeout bounds how long a replaced replica may finish its requests.
	DrainTimeout time.Duration
	Procs        procs.Options
	Secrets      *secrets.Store
	Logger       *slog.Logger
	// OnChange is called after every deploy, update, scale and delete.
	OnChange func()
}

// Function is one deployed function.
type Function struct {
	name        string
	group       atomic.Pointer[procs.Group]
	invocations atomic.Int64
	logs        *procs.LogRing

	mu         sync.Mutex // guards deployment, replicas
	deployment types.FunctionDeployment
	replicas   int
	created    time.Time
}

// Name is the function's name.
func (f *Function) Name() string { return f.name }

// Group is the generation that serves requests now.
func (f *Function) Group() *procs.Group { return f.group.Load() }

// Logs is the function's output.
func (f *Function) Logs() *procs.LogRing { return f.logs }

// CountInvocation adds one to the function's invocationCount.
func (f *Function) CountInvocation() { f.invocations.Add(1) }

// Deployment returns the function's current deployment.
func (f *Function) Deployment() types.FunctionDeployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deployment
}

// Registry is the set of deployed functions.
type Registry struct {
	opts Options
	log  *slog.Logger

	mu    sync.RWMutex
	fns   map[string]*Function
	locks map[string]*sync.Mutex

	persistMu sync.Mutex
}

// New returns an empty registry; Restore brings back persisted deployments.
func New(opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "functions"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return &Registry{opts: opts, log: opts.Logger, fns: map[string]*Function{}, locks: map[string]*sync.Mutex{}}, nil
}

// lock serializes changes to one function.
func (r *Registry) lock(name string) func() {
	r.mu.Lock()
	l, ok := r.locks[name]
	if !ok {
		l = &sync.Mutex{}
		r.locks[name] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Lookup returns a deployed function.
func (r *Registry) Lookup(name string) (*Function, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.fns[name]
	return f, ok
}

// Exists says whether a function is deployed.
func (r *Registry) Exists(name string) bool {
	_, ok := r.Lookup(name)
	return ok
}

// Deploy creates a function, or replaces it when it exists (so deploying the
// same stack twice is safe). It returns when the replicas are healthy; if they
// are not within the ready timeout it stops them and returns procs.ErrNotReady.
func (r *Registry) Deploy(ctx context.Context, d types.FunctionDeployment) error {
	return r.apply(ctx, d, false)
}

// Update replaces an existing function (ErrNotFound if there is none): new
// replicas start, become healthy, take the traffic, and the old ones drain.
func (r *Registry) Update(ctx context.Context, d types.FunctionDeployment) error {
	return r.apply(ctx, d, true)
}

func (r *Registry) apply(ctx context.Context, d types.FunctionDeployment, mustExist bool) error {
	if err := ValidName(d.Service); err != nil {
		return err
	}
	if err := ValidNamespace(d.Namespace); err != nil {
		return err
	}
	bin, err := ImageBinary(r.opts.BinDir, d.Image)
	if err != nil {
		return err
	}
	unlock := r.lock(d.Service)
	defer unlock()
	old, exists := r.Lookup(d.Service)
	if mustExist && !exists {
		return fmt.Errorf("%w: %s", ErrNotFound, d.Service)
	}
	replicas := 1
	if exists {
		old.mu.Lock()
		replicas = old.replicas
		old.mu.Unlock()
	}
	if n, ok, err := scaleLabel(d, LabelScaleMin); err != nil {
		return err
	} else if ok {
		replicas = n
	}
	if err := checkMax(d, replicas); err != nil {
		return err
	}

	fnDir := filepath.Join(r.opts.StateDir, "functions", d.Service)
	secretsDir := filepath.Join(fnDir, "secrets")
	if err := r.opts.Secrets.Materialize(secretsDir, d.Secrets); err != nil {
		if errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrInvalidName) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	absSecrets, err := filepath.Abs(secretsDir)
	if err != nil {
		return err
	}
	f := old
	if !exists {
		f = &Function{name: d.Service, logs: procs.NewLogRing(d.Service, logLines), created: time.Now().UTC()}
	}
	d.Namespace = procs.Namespace
	spec := procs.Spec{Name: d.Service, Binary: bin, Env: processEnv(d, absSecrets), Logs: f.logs}
	g := procs.StartGroup(spec, replicas, r.opts.Procs)
	if err := g.WaitReady(ctx, r.opts.ReadyTimeout); err != nil {
		g.Stop(context.WithoutCancel(ctx), 0)
		if !exists {
			_ = os.RemoveAll(fnDir)
		}
		return err
	}
	f.mu.Lock()
	f.deployment, f.replicas = d, replicas
	f.mu.Unlock()
	prev := f.group.Swap(g)
	if !exists {
		r.mu.Lock()
		r.fns[d.Service] = f
		r.mu.Unlock()
	}
	r.log.Info("function deployed", "function", d.Service, "image", d.Image, "binary", bin, "replicas", replicas, "update", exists)
	r.changed()
	if prev != nil {
		prev.Stop(context.WithoutCancel(ctx), r.opts.DrainTimeout)
	}
	return nil
}

// Scale sets a function's replica count.
func (r *Registry) Scale(ctx context.Context, name string, replicas int) error {
	unlock := r.lock(name)
	defer unlock()
	f, ok := r.Lookup(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	d := f.Deployment()
	if replicas < 0 {
		return fmt.Errorf("%w: replicas %d", ErrInvalid, replicas)
	}
	if err := checkMax(d, replicas); err != nil {
		return err
	}
	f.mu.Lock()
	f.replicas = replicas
	f.mu.Unlock()
	f.Group().Scale(ctx, replicas)
	r.log.Info("function scaled", "function", name, "replicas", replicas)
	r.changed()
	return nil
}

// Delete stops a function and forgets it.
func (r *Registry) Delete(ctx context.Context, name string) error {
	unlock := r.lock(name)
	defer unlock()
	f, ok := r.Lookup(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	r.mu.Lock()
	delete(r.fns, name)
	r.mu.Unlock()
	f.Group().Stop(ctx, r.opts.DrainTimeout)
	if err := os.RemoveAll(filepath.Join(r.opts.StateDir, "functions", name)); err != nil {
		r.log.Warn("removing function state", "function", name, "err", err)
	}
	r.log.Info("function deleted", "function", name)
	r.changed()
	return nil
}

// Status returns a function's status.
func (r *Registry) Status(name string) (types.FunctionStatus, error) {
	f, ok := r.Lookup(name)
	if !ok {
		return types.FunctionStatus{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return f.status(), nil
}

// List returns every function's status, by name.
func (r *Registry) List() []types.FunctionStatus {
	r.mu.RLock()
	fns := make([]*Function, 0, len(r.fns))
	for _, f := range r.fns {
		fns = append(fns, f)
	}
	r.mu.RUnlock()
	out := make([]types.FunctionStatus, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *Function) status() types.FunctionStatus {
	f.mu.Lock()
	d, created, want := f.deployment, f.created, f.replicas
	f.mu.Unlock()
	_, ready := f.Group().Counts()
	return types.FunctionStatus{
		Name: d.Service, Image: d.Image, Namespace: d.Namespace, EnvProcess: d.EnvProcess,
		EnvVars: d.EnvVars, Constraints: d.Constraints, Secrets: d.Secrets,
		Labels: d.Labels, Annotations: d.Annotations, Limits: d.Limits, Requests: d.Requests,
		ReadOnlyRootFilesystem: d.ReadOnlyRootFilesystem,
		InvocationCount:        float64(f.invocations.Load()),
		Replicas:               uint64(want), AvailableReplicas: uint64(ready),
		CreatedAt: created,
	}
}

// Close stops every function (waiting at most drain for requests in flight).
func (r *Registry) Close(ctx context.Context, drain time.Duration) {
	r.mu.RLock()
	fns := make([]*Function, 0, len(r.fns))
	for _, f := range r.fns {
		fns = append(fns, f)
	}
	r.mu.RUnlock()
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(func() { f.Group().Stop(ctx, drain) })
	}
	wg.Wait()
}

func (r *Registry) changed() {
	if err := r.persist(); err != nil {
		r.log.Error("persisting deployments", "err", err)
	}
	if r.opts.OnChange != nil {
		r.opts.OnChange()
	}
}

func scaleLabel(d types.FunctionDeployment, key string) (int, bool, error) {
	if d.Labels == nil {
		return 0, false, nil
	}
	v, ok := (*d.Labels)[key]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("%w: label %s=%q: want a whole number", ErrInvalid, key, v)
	}
	return n, true, nil
}

func checkMax(d types.FunctionDeployment, replicas int) error {
	max := MaxReplicas
	if n, ok, err := scaleLabel(d, LabelScaleMax); err != nil {
		return err
	} else if ok && n > 0 {
		max = n
	}
	if replicas > max {
		return fmt.Errorf("%w: %d replicas of %s: at most %d", ErrInvalid, replicas, d.Service, max)
	}
	return nil
}

func processEnv(d types.FunctionDeployment, secretsDir string) []string {
	var env []string
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(d.EnvVars))
	for k := range d.EnvVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+d.EnvVars[k])
	}
	return append(env, "AIGW_SECRETS_DIR="+secretsDir, "AIGW_FUNCTION_NAME="+d.Service)
}

// state is deployments.json.
type state struct {
	Functions []record `json:"functions"`
}

type record struct {
	Deployment types.FunctionDeployment `json:"deployment"`
	Replicas   int                      `json:"replicas"`
}

func (r *Registry) statePath() string { return filepath.Join(r.opts.StateDir, "deployments.json") }

func (r *Registry) persist() error {
	r.persistMu.Lock()
	defer r.persistMu.Unlock()
	var s state
	r.mu.RLock()
	for _, f := range r.fns {
		f.mu.Lock()
		s.Functions = append(s.Functions, record{Deployment: f.deployment, Replicas: f.replicas})
		f.mu.Unlock()
	}
	r.mu.RUnlock()
	sort.Slice(s.Functions, func(i, j int) bool { return s.Functions[i].Deployment.Service < s.Functions[j].Deployment.Service })
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.statePath())
}

// Restore deploys the functions persisted by an earlier run, concurrently; a
// function that fails is logged and left out.
func (r *Registry) Restore(ctx context.Context) error {
	b, err := os.ReadFile(r.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w", r.statePath(), err)
	}
	var wg sync.WaitGroup
	for _, rec := range s.Functions {
		wg.Go(func() {
			d := rec.Deployment
			labels := map[string]string{}
			if d.Labels != nil {
				for k, v := range *d.Labels {
					labels[k] = v
				}
			}
			// Bring back the scaled replica count, not just the label's minimum.
			restore := d
			labels[LabelScaleMin] = strconv.Itoa(rec.Replicas)
			restore.Labels = &labels
			if err := r.Deploy(ctx, restore); err != nil {
				r.log.Error("restoring function", "function", d.Service, "err", err)
				return
			}
			if f, ok := r.Lookup(d.Service); ok {
				f.mu.Lock()
				f.deployment = d
				f.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return r.persist()
}

// Package config reads the worker's configuration from the environment, through
// an injectable getenv so that tests pass a map. A value that is set but bad is
// an error naming the variable, never a silent default.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is the worker's whole configuration.
type Config struct {
	Pool          string            // AIGW_POOL (required)
	RedisAddrs    []string          // AIGW_REDIS_ADDRS (required)
	RedisPassword string            // AIGW_REDIS_PASSWORD
	MongoURI      string            // AIGW_MONGO_URI (required)
	MongoDB       string            // AIGW_MONGO_DB (default aigw)
	Slots         int               // AIGW_SLOTS (default: number of GPUs, else CPUs)
	Node          string            // AIGW_NODE_NAME (default: host name)
	Labels        map[string]string // AIGW_LABELS, k=v,k=v
	AdvertiseAddr string            // AIGW_ADVERTISE_ADDR: host given as MASTER_ADDR (default 127.0.0.1)
	MetricsAddr   string            // AIGW_METRICS_ADDR (default 127.0.0.1:9108; "" or "off" disables)
	AlgorithmsDir string            // AIGW_ALGORITHMS_DIR (default ./algorithms)
	BinDir        string            // AIGW_BIN_DIR (default ./bin)
	WorkDir       string            // AIGW_WORK_DIR: parent of per-run temp dirs (default: the OS temp dir)
	// Interpreters (AIGW_INTERPRETERS, comma-separated absolute paths, default
	// none) are the programs outside the bin and algorithms directories that a
	// definition may run, by base name (e.g. /usr/bin/python3 as python3).
	Interpreters []string
	// RunAs (AIGW_RUN_AS: a user name or uid:gid) is the user exec runs execute
	// as. Default: nobody when the worker runs as root, else nil (the worker's
	// own user). Root is refused, and setting it needs a root worker.
	RunAs     *RunAs
	NvidiaSMI string // AIGW_NVIDIA_SMI (default nvidia-smi on PATH)
	// CPUFallback (AIGW_CPU_FALLBACK=true): a node without GPUs runs jobs that ask
	// for GPUs on its CPU, with CUDA_VISIBLE_DEVICES empty (for algorithms that
	// fall back to the CPU, on dev machines and CPU-only pools).
	CPUFallback bool

	Heartbeat     time.Duration // AIGW_HEARTBEAT (default 2s); registry TTL is two heartbeats
	Lease         time.Duration // AIGW_LEASE: queue lease (default 30s)
	ShutdownGrace time.Duration // AIGW_SHUTDOWN_GRACE: drain time on SIGTERM (default 30s)
	KillGrace     time.Duration // AIGW_KILL_GRACE: SIGTERM → SIGKILL of a run (default 5s)
	RetryBase     time.Duration // AIGW_RETRY_BASE: first retry backoff (default 1s)
	RetryMax      time.Duration // AIGW_RETRY_MAX: backoff cap (default 5m)
	GangTimeout   time.Duration // AIGW_GANG_START_TIMEOUT: all members must start within (default 30s)

	OutputLimit   int64 // AIGW_OUTPUT_LIMIT: stdout bytes (default 1 MiB)
	LogTail       int64 // AIGW_LOG_TAIL: stderr bytes kept in the record (default 64 KiB)
	ArtifactLimit int64 // AIGW_ARTIFACT_LIMIT: total artifact bytes per run (default 256 MiB)
	// ArtifactRetry (AIGW_ARTIFACT_RETRY, default 2m) bounds the retries of
	// an object store that does not answer while a run's files are stored.
	ArtifactRetry time.Duration
	// S3 is the object store artifacts go to (AIGW_S3_*); without an
	// endpoint they go to MongoDB GridFS.
	S3 objstore.Config
	// CacheDir (AIGW_CACHE_DIR, default <work dir>/aigw-assets) holds the
	// asset cache; CacheBytes (AIGW_CACHE_BYTES, default 10 GiB) is its budget.
	CacheDir   string
	CacheBytes int64
	// URLAllowedNets are the non-public networks input file URLs may reach
	// (AIGW_WEBHOOK_ALLOWED_NETS, as for the router; default none).
	URLAllowedNets []netip.Prefix

	// Queue is the queue's shared configuration (AIGW_QUEUE_SHARDS), with Lease.
	Queue queue.Config
}

// Load reads the daemon's configuration; every bad value is reported, joined.
//
// lookupEnv is os.LookupEnv or a map's lookup in tests; hostname is os.Hostname.
func Load(lookupEnv func(string) (string, bool), hostname func() (string, error)) (Config, error) {
	r := envconf.New(lookupEnv)
	c := Read(r, hostname)
	return c, r.Err()
}

// Read reads the daemon's configuration through r (errors stay in r).
func Read(r *envconf.Reader, hostname func() (string, error)) Config {
	c := Config{
		Pool:          r.Required("AIGW_POOL", "the pool this worker serves, such as gpu-a100"),
		RedisAddrs:    r.RedisAddrs(true, redisconn.ParseAddrs),
		RedisPassword: r.RedisPassword(),
		MongoURI:      r.MongoURI(true),
		MongoDB:       r.MongoDB(),
		Slots:         r.Int("AIGW_SLOTS", 0, 1, 0),
		Node:          r.String("AIGW_NODE_NAME", ""),
		Labels:        labels(r, "AIGW_LABELS"),
		AdvertiseAddr: r.String("AIGW_ADVERTISE_ADDR", "127.0.0.1"),
		MetricsAddr:   metricsAddr(r, "AIGW_METRICS_ADDR"),
		AlgorithmsDir: r.String("AIGW_ALGORITHMS_DIR", "./algorithms"),
		BinDir:        r.String("AIGW_BIN_DIR", "./bin"),
		WorkDir:       r.String("AIGW_WORK_DIR", ""),
		Interpreters:  interpreters(r, "AIGW_INTERPRETERS"),
		RunAs:         runAs(r, "AIGW_RUN_AS"),
		NvidiaSMI:     r.String("AIGW_NVIDIA_SMI", "nvidia-smi"),
		CPUFallback:   r.Bool("AIGW_CPU_FALLBACK", false),
		Heartbeat:     r.Duration("AIGW_HEARTBEAT", 2*time.Second, envconf.Positive, 0),
		Lease:         r.Duration("AIGW_LEASE", 30*time.Second, 3*time.Second/2, 0),
		ShutdownGrace: r.Duration("AIGW_SHUTDOWN_GRACE", 30*time.Second, envconf.Positive, 0),
		KillGrace:     r.Duration("AIGW_KILL_GRACE", 5*time.Second, envconf.Positive, 0),
		RetryBase:     r.Duration("AIGW_RETRY_BASE", time.Second, envconf.Positive, 0),
		RetryMax:      r.Duration("AIGW_RETRY_MAX", 5*time.Minute, envconf.Positive, 0),
		GangTimeout:   r.Duration("AIGW_GANG_START_TIMEOUT", 30*time.Second, envconf.Positive, 0),
		OutputLimit:   size(r, "AIGW_OUTPUT_LIMIT", 1<<20),
		LogTail:       size(r, "AIGW_LOG_TAIL", 64<<10),
		ArtifactLimit: size(r, "AIGW_ARTIFACT_LIMIT", 256<<20),
		ArtifactRetry: r.Duration("AIGW_ARTIFACT_RETRY", 2*time.Minute, 0, 0),
		S3:            objstore.ReadConfig(r),
	}
	c.URLAllowedNets = envconf.ParseNamed(r, egress.AllowedNetsEnv, nil, egress.ParseAllowedNets)
	c.CacheDir = r.String("AIGW_CACHE_DIR", "")
	c.CacheBytes = size(r, "AIGW_CACHE_BYTES", 10<<30)
	if c.Pool != "" {
		if err := queue.ValidatePool(c.Pool); err != nil {
			r.Failf("AIGW_POOL", "%v", err)
		}
	}
	if c.Node == "" {
		h, err := hostname()
		if err != nil || h == "" {
			r.Failf("AIGW_NODE_NAME", "is not set and the host name is unknown (%v)", err)
		}
		c.Node = h
	}
	// The lease is the consumer's own setting (renewed every third of it).
	c.Queue = queue.ConfigFromEnv(r)
	c.Queue.Lease = c.Lease
	return c
}

// DefaultSlots is the slot count when AIGW_SLOTS is unset: one per GPU, or one
// per CPU on a node without GPUs.
func DefaultSlots(gpus int) int {
	if gpus > 0 {
		return gpus
	}
	return runtime.NumCPU()
}

// Register is the configuration of `aigw-worker register`.
type Register struct {
	MongoURI, MongoDB, AlgorithmsDir string
}

// LoadRegister reads the variables `register` needs.
func LoadRegister(lookupEnv func(string) (string, bool)) (Register, error) {
	r := envconf.New(lookupEnv)
	c := ReadRegister(r)
	return c, r.Err()
}

// ReadRegister reads Register through r (errors stay in r).
func ReadRegister(r *envconf.Reader) Register {
	return Register{
		MongoURI:      r.MongoURI(true),
		MongoDB:       r.MongoDB(),
		AlgorithmsDir: r.String("AIGW_ALGORITHMS_DIR", "./algorithms"),
	}
}

// RunAs is the user runs execute as.
type RunAs struct {
	User     string
	UID, GID uint32
}

// DefaultRunAs is the user runs execute as when the worker is root and
// AIGW_RUN_AS is unset.
const DefaultRunAs = "nobody"

// Seams for tests: the worker's effective uid and the user database.
var (
	geteuid    = os.Geteuid
	lookupUser = user.Lookup
)

// runAs reads a user name or uid:gid. Unset, it is DefaultRunAs for a root
// worker and nil otherwise.
func runAs(r *envconf.Reader, k string) *RunAs {
	v, _ := r.Lookup(k)
	root := geteuid() == 0
	switch {
	case v == "" && !root:
		return nil
	case v == "":
		v = DefaultRunAs
	case !root:
		r.Fail(fmt.Errorf("%s=%q: the worker runs as uid %d and cannot start runs as another user; unset it, or run the worker as root", k, v, geteuid()))
		return nil
	}
	ra := &RunAs{User: v}
	if us, gs, ok := strings.Cut(v, ":"); ok {
		uid, err1 := strconv.ParseUint(us, 10, 32)
		gid, err2 := strconv.ParseUint(gs, 10, 32)
		if err1 != nil || err2 != nil {
			r.Fail(fmt.Errorf("%s=%q: want a user name or uid:gid such as 65534:65534", k, v))
			return nil
		}
		ra.UID, ra.GID = uint32(uid), uint32(gid)
	} else {
		u, err := lookupUser(v)
		if err != nil {
			r.Fail(fmt.Errorf("%s=%q: %v (want a user name or uid:gid)", k, v, err))
			return nil
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			r.Fail(fmt.Errorf("%s=%q: user has uid %q gid %q, want numbers", k, v, u.Uid, u.Gid))
			return nil
		}
		ra.UID, ra.GID = uint32(uid), uint32(gid)
	}
	if ra.UID == 0 || ra.GID == 0 {
		r.Fail(fmt.Errorf("%s=%q: runs must not have root's uid or gid; name an unprivileged user such as %s", k, v, DefaultRunAs))
		return nil
	}
	return ra
}

// interpreters reads comma-separated absolute paths with distinct base names.
func interpreters(r *envconf.Reader, k string) []string {
	v, _ := r.Lookup(k)
	if v == "" {
		return nil
	}
	var out []string
	seen := map[string]string{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			continue
		case !filepath.IsAbs(p) || filepath.Clean(p) != p:
			r.Fail(fmt.Errorf("%s %q: want absolute, clean paths such as /usr/bin/python3", k, p))
			return nil
		case seen[filepath.Base(p)] != "":
			r.Fail(fmt.Errorf("%s %q and %q have the same name %q; a command names an interpreter by it", k, seen[filepath.Base(p)], p, filepath.Base(p)))
			return nil
		}
		seen[filepath.Base(p)] = p
		out = append(out, p)
	}
	return out
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize parses a byte size: a plain number of bytes or one with a unit
// (B, K/KiB, M/MiB, G/GiB binary; KB, MB, GB decimal).
func ParseSize(v string) (int64, error) {
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q: want a positive size such as 1048576, 64KiB or 1MiB", v)
	}
	return n * mult, nil
}

func size(r *envconf.Reader, k string, def int64) int64 {
	return envconf.Parse(r, k, def, ParseSize)
}

// metricsAddr reads host:port; "" or off (set, not unset) disables metrics.
func metricsAddr(r *envconf.Reader, k string) string {
	v, ok := r.LookupRaw(k)
	switch {
	case !ok:
		return "127.0.0.1:9108"
	case v == "" || v == "off":
		return ""
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		r.Failf(k, "want host:port, \"\" or off: %v", err)
		return ""
	}
	return v
}

func labels(r *envconf.Reader, k string) map[string]string {
	v, ok := r.Lookup(k)
	if !ok {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			r.Failf(k, "want k=v,k=v")
			return nil
		}
		out[name] = strings.TrimSpace(val)
	}
	return out
}

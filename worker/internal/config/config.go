// Package config reads the worker's configuration from the environment, through
// an injectable getenv so that tests pass a map. A value that is set but bad is
// an error naming the variable, never a silent default.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

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
}

// Load reads the daemon's configuration.
//
// lookupEnv is os.LookupEnv or a map's lookup in tests; hostname is os.Hostname.
func Load(lookupEnv func(string) (string, bool), hostname func() (string, error)) (Config, error) {
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	c := Config{
		MongoDB: "aigw", AdvertiseAddr: "127.0.0.1", MetricsAddr: "127.0.0.1:9108",
		AlgorithmsDir: "./algorithms", BinDir: "./bin", NvidiaSMI: "nvidia-smi",
		Heartbeat: 2 * time.Second, Lease: 30 * time.Second, ShutdownGrace: 30 * time.Second,
		KillGrace: 5 * time.Second, RetryBase: time.Second, RetryMax: 5 * time.Minute,
		GangTimeout: 30 * time.Second,
		OutputLimit: 1 << 20, LogTail: 64 << 10, ArtifactLimit: 256 << 20,
	}
	r := reader{getenv: getenv}
	c.Pool = r.str("AIGW_POOL", "")
	if c.Pool == "" {
		r.fail("AIGW_POOL", "is required")
	} else if err := queue.ValidatePool(c.Pool); err != nil {
		r.fail("AIGW_POOL", err.Error())
	}
	if v := getenv("AIGW_REDIS_ADDRS"); v == "" {
		r.fail("AIGW_REDIS_ADDRS", "is required")
	} else if addrs, err := redisconn.ParseAddrs(v); err != nil {
		r.fail("AIGW_REDIS_ADDRS", err.Error())
	} else {
		c.RedisAddrs = addrs
	}
	c.RedisPassword = getenv("AIGW_REDIS_PASSWORD")
	c.MongoURI = r.str("AIGW_MONGO_URI", "")
	if c.MongoURI == "" {
		r.fail("AIGW_MONGO_URI", "is required")
	}
	c.MongoDB = r.str("AIGW_MONGO_DB", c.MongoDB)
	c.Slots = r.int("AIGW_SLOTS", 0)
	c.Node = r.str("AIGW_NODE_NAME", "")
	if c.Node == "" {
		h, err := hostname()
		if err != nil || h == "" {
			r.fail("AIGW_NODE_NAME", fmt.Sprintf("is not set and the host name is unknown (%v)", err))
		}
		c.Node = h
	}
	c.Labels = r.labels("AIGW_LABELS")
	c.AdvertiseAddr = r.str("AIGW_ADVERTISE_ADDR", c.AdvertiseAddr)
	if v, ok := lookupEnv("AIGW_METRICS_ADDR"); ok {
		c.MetricsAddr = strings.TrimSpace(v)
		if c.MetricsAddr == "off" {
			c.MetricsAddr = ""
		}
		if c.MetricsAddr != "" {
			if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
				r.fail("AIGW_METRICS_ADDR", "want host:port, \"\" or off: "+err.Error())
			}
		}
	}
	c.AlgorithmsDir = r.str("AIGW_ALGORITHMS_DIR", c.AlgorithmsDir)
	c.BinDir = r.str("AIGW_BIN_DIR", c.BinDir)
	c.WorkDir = r.str("AIGW_WORK_DIR", "")
	c.Interpreters = r.interpreters("AIGW_INTERPRETERS")
	c.RunAs = r.runAs("AIGW_RUN_AS")
	c.NvidiaSMI = r.str("AIGW_NVIDIA_SMI", c.NvidiaSMI)
	c.CPUFallback = r.bool("AIGW_CPU_FALLBACK", false)
	c.Heartbeat = r.dur("AIGW_HEARTBEAT", c.Heartbeat)
	c.Lease = r.dur("AIGW_LEASE", c.Lease)
	c.ShutdownGrace = r.dur("AIGW_SHUTDOWN_GRACE", c.ShutdownGrace)
	c.KillGrace = r.dur("AIGW_KILL_GRACE", c.KillGrace)
	c.RetryBase = r.dur("AIGW_RETRY_BASE", c.RetryBase)
	c.RetryMax = r.dur("AIGW_RETRY_MAX", c.RetryMax)
	c.GangTimeout = r.dur("AIGW_GANG_START_TIMEOUT", c.GangTimeout)
	c.OutputLimit = r.size("AIGW_OUTPUT_LIMIT", c.OutputLimit)
	c.LogTail = r.size("AIGW_LOG_TAIL", c.LogTail)
	c.ArtifactLimit = r.size("AIGW_ARTIFACT_LIMIT", c.ArtifactLimit)
	if c.Lease < 3*time.Second/2 && c.Lease > 0 {
		r.fail("AIGW_LEASE", "must be at least 1.5s (it is renewed every third of it)")
	}
	return c, errors.Join(r.errs...)
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
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	r := reader{getenv: getenv}
	c := Register{
		MongoURI:      r.str("AIGW_MONGO_URI", ""),
		MongoDB:       r.str("AIGW_MONGO_DB", "aigw"),
		AlgorithmsDir: r.str("AIGW_ALGORITHMS_DIR", "./algorithms"),
	}
	if c.MongoURI == "" {
		r.fail("AIGW_MONGO_URI", "is required")
	}
	return c, errors.Join(r.errs...)
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
func (r *reader) runAs(k string) *RunAs {
	v := strings.TrimSpace(r.getenv(k))
	root := geteuid() == 0
	switch {
	case v == "" && !root:
		return nil
	case v == "":
		v = DefaultRunAs
	case !root:
		r.fail(k, fmt.Sprintf("=%q: the worker runs as uid %d and cannot start runs as another user; unset it, or run the worker as root", v, geteuid()))
		return nil
	}
	ra := &RunAs{User: v}
	if us, gs, ok := strings.Cut(v, ":"); ok {
		uid, err1 := strconv.ParseUint(us, 10, 32)
		gid, err2 := strconv.ParseUint(gs, 10, 32)
		if err1 != nil || err2 != nil {
			r.fail(k, fmt.Sprintf("=%q: want a user name or uid:gid such as 65534:65534", v))
			return nil
		}
		ra.UID, ra.GID = uint32(uid), uint32(gid)
	} else {
		u, err := lookupUser(v)
		if err != nil {
			r.fail(k, fmt.Sprintf("=%q: %v (want a user name or uid:gid)", v, err))
			return nil
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			r.fail(k, fmt.Sprintf("=%q: user has uid %q gid %q, want numbers", v, u.Uid, u.Gid))
			return nil
		}
		ra.UID, ra.GID = uint32(uid), uint32(gid)
	}
	if ra.UID == 0 || ra.GID == 0 {
		r.fail(k, fmt.Sprintf("=%q: runs must not have root's uid or gid; name an unprivileged user such as %s", v, DefaultRunAs))
		return nil
	}
	return ra
}

// interpreters reads comma-separated absolute paths with distinct base names.
func (r *reader) interpreters(k string) []string {
	v := strings.TrimSpace(r.getenv(k))
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
			r.fail(k, fmt.Sprintf("%q: want absolute, clean paths such as /usr/bin/python3", p))
			return nil
		case seen[filepath.Base(p)] != "":
			r.fail(k, fmt.Sprintf("%q and %q have the same name %q; a command names an interpreter by it", seen[filepath.Base(p)], p, filepath.Base(p)))
			return nil
		}
		seen[filepath.Base(p)] = p
		out = append(out, p)
	}
	return out
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(k, msg string) { r.errs = append(r.errs, fmt.Errorf("%s %s", k, msg)) }

func (r *reader) str(k, def string) string {
	if v := strings.TrimSpace(r.getenv(k)); v != "" {
		return v
	}
	return def
}

func (r *reader) int(k string, def int) int {
	v := strings.TrimSpace(r.getenv(k))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		r.fail(k, fmt.Sprintf("%q: want a positive integer", v))
		return def
	}
	return n
}

// bool reads true/false (also 1/0, yes/no); anything else is an error.
func (r *reader) bool(k string, def bool) bool {
	switch v := strings.ToLower(strings.TrimSpace(r.getenv(k))); v {
	case "":
		return def
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	default:
		r.fail(k, fmt.Sprintf("=%q: want true or false", v))
		return def
	}
}

func (r *reader) dur(k string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(k))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(k, fmt.Sprintf("%q: want a positive duration such as 2s or 500ms", v))
		return def
	}
	return d
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

func (r *reader) size(k string, def int64) int64 {
	v := strings.TrimSpace(r.getenv(k))
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		r.fail(k, err.Error())
		return def
	}
	return n
}

func (r *reader) labels(k string) map[string]string {
	v := strings.TrimSpace(r.getenv(k))
	if v == "" {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			r.fail(k, fmt.Sprintf("%q: want k=v,k=v", v))
			return nil
		}
		out[name] = strings.TrimSpace(val)
	}
	return out
}

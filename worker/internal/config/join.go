package config

import (
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/envconf"
)

// LoadJoin reads the configuration of `aigw-worker --join URL --token T`: a
// worker that speaks the executor API and holds no Redis or MongoDB address
// or credential; its pool comes from its token. It reads the run settings
// Load reads (slots, node name, labels, directories, run user, limits, GPUs,
// the asset cache, the networks input URLs may reach) and nothing else; Pool, the Redis and MongoDB settings and the queue stay
// empty.
func LoadJoin(lookupEnv func(string) (string, bool), hostname func() (string, error)) (Config, error) {
	r := envconf.New(lookupEnv)
	c := ReadJoin(r, hostname)
	return c, r.Err()
}

// ReadJoin reads LoadJoin's configuration through r (errors stay in r).
func ReadJoin(r *envconf.Reader, hostname func() (string, error)) Config {
	c := Config{
		Slots:         r.Int("AIGW_SLOTS", 0, 1, 0),
		Node:          r.String("AIGW_NODE_NAME", ""),
		Labels:        labels(r, "AIGW_LABELS"),
		MetricsAddr:   metricsAddr(r, "AIGW_METRICS_ADDR"),
		AlgorithmsDir: r.String("AIGW_ALGORITHMS_DIR", "./algorithms"),
		BinDir:        r.String("AIGW_BIN_DIR", "./bin"),
		WorkDir:       r.String("AIGW_WORK_DIR", ""),
		Interpreters:  interpreters(r, "AIGW_INTERPRETERS"),
		RunAs:         runAs(r, "AIGW_RUN_AS"),
		NvidiaSMI:     r.String("AIGW_NVIDIA_SMI", "nvidia-smi"),
		CPUFallback:   r.Bool("AIGW_CPU_FALLBACK", false),
		ShutdownGrace: r.Duration("AIGW_SHUTDOWN_GRACE", 30*time.Second, envconf.Positive, 0),
		KillGrace:     r.Duration("AIGW_KILL_GRACE", 5*time.Second, envconf.Positive, 0),
		OutputLimit:   size(r, "AIGW_OUTPUT_LIMIT", 1<<20),
		LogTail:       size(r, "AIGW_LOG_TAIL", 64<<10),
		ArtifactLimit: size(r, "AIGW_ARTIFACT_LIMIT", 256<<20),
	}
	c.URLAllowedNets = envconf.ParseNamed(r, egress.AllowedNetsEnv, nil, egress.ParseAllowedNets)
	c.CacheDir = r.String("AIGW_CACHE_DIR", "")
	c.CacheBytes = size(r, "AIGW_CACHE_BYTES", 10<<30)
	if c.Node == "" {
		if h, err := hostname(); err == nil {
			c.Node = h
		}
	}
	return c
}

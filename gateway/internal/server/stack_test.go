package server

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/openfaas/faas-provider/types"
	"gopkg.in/yaml.v3"

	"github.com/aigw/aigw/gateway/internal/cron"
	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/gateway/internal/provider"
	"github.com/aigw/aigw/internal/fnserve"
)

// stackFile is the part of OpenFaaS's stack format that stack.yml uses.
type stackFile struct {
	Version  string `yaml:"version"`
	Provider struct {
		Name    string `yaml:"name"`
		Gateway string `yaml:"gateway"`
	} `yaml:"provider"`
	Functions map[string]struct {
		Image       string            `yaml:"image"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
		Limits      struct {
			Memory string `yaml:"memory"`
			CPU    string `yaml:"cpu"`
		} `yaml:"limits"`
	} `yaml:"functions"`
}

// TestStackYML checks the repository's stack.yml: the functions, their
// secrets and schedule, and that each image resolves to bin/<name>.
func TestStackYML(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	var s stackFile
	if err := yaml.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0" || s.Provider.Name != "openfaas" || s.Provider.Gateway != "http://127.0.0.1:8080" {
		t.Errorf("header: %+v", s)
	}
	wantSecrets := map[string][]string{
		"auth":         {"aigw-mongo-uri", "aigw-jwt-signing-key", "aigw-admin-token"},
		"router":       {"aigw-redis-addrs", "aigw-redis-password", "aigw-mongo-uri", "aigw-s3-endpoint", "aigw-s3-public-endpoint", "aigw-s3-bucket", "aigw-s3-access-key", "aigw-s3-secret-key"},
		"orchestrator": {"aigw-redis-addrs", "aigw-redis-password", "aigw-mongo-uri", "aigw-admin-token", "aigw-s3-endpoint", "aigw-s3-public-endpoint", "aigw-s3-bucket", "aigw-s3-access-key", "aigw-s3-secret-key"},
		"executors":    {"aigw-redis-addrs", "aigw-redis-password", "aigw-mongo-uri", "aigw-admin-token"},
		"console":      nil, // it holds no secret: every action goes through the public API
	}
	if len(s.Functions) != len(wantSecrets) {
		t.Errorf("functions: %d, want %d", len(s.Functions), len(wantSecrets))
	}
	bin := t.TempDir()
	envsubst := regexp.MustCompile(`\$\{AIGW_VERSION:-latest\}`)
	for name, secrets := range wantSecrets {
		fn, ok := s.Functions[name]
		if !ok {
			t.Errorf("function %s missing", name)
			continue
		}
		if fn.Image != "ghcr.io/aigw/"+name+":${AIGW_VERSION:-latest}" {
			t.Errorf("%s image %q", name, fn.Image)
		}
		if !slices.Equal(fn.Secrets, secrets) {
			t.Errorf("%s secrets %v, want %v", name, fn.Secrets, secrets)
		}
		if fn.Labels[fnregistry.LabelScaleMin] == "" || fn.Limits.Memory == "" || fn.Limits.CPU == "" {
			t.Errorf("%s: scale.min label and limits wanted: %+v", name, fn)
		}
		// Prometheus finds every replica (GET /system/metrics-targets; pod annotations on Kubernetes).
		if fn.Annotations[provider.AnnotationScrape] != "true" || fn.Annotations[provider.AnnotationPath] != fnserve.MetricsPath {
			t.Errorf("%s: annotations %v, want %s: \"true\" and %s: %s", name, fn.Annotations,
				provider.AnnotationScrape, provider.AnnotationPath, fnserve.MetricsPath)
		}
		if err := fnregistry.ValidName(name); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, version := range []string{"latest", "1.2.3"} {
			image := envsubst.ReplaceAllString(fn.Image, version)
			got, err := fnregistry.ImageBinary(bin, image)
			if err != nil || got != filepath.Join(bin, name) {
				t.Errorf("%s resolves to %q, %v", image, got, err)
			}
		}
	}
	orch := s.Functions["orchestrator"]
	ann := orch.Annotations
	job, ok, err := cron.JobFor(types.FunctionStatus{Name: "orchestrator", Annotations: &ann})
	if err != nil || !ok || job.Schedule != "* * * * *" || job.Path != "/tick" {
		t.Errorf("orchestrator cron job: %+v %v %v", job, ok, err)
	}
}

package queue

import (
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/envconf"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	r := envconf.Map(nil)
	if c := ConfigFromEnv(r); c.Shards != DefaultShards || r.Err() != nil {
		t.Errorf("default: %+v %v", c, r.Err())
	}
	r = envconf.Map(map[string]string{EnvShards: "16"})
	if c := ConfigFromEnv(r); c.Shards != 16 || r.Err() != nil {
		t.Errorf("16: %+v %v", c, r.Err())
	}
	for _, bad := range []string{"0", "-1", "many", "1025"} {
		r = envconf.Map(map[string]string{EnvShards: bad})
		ConfigFromEnv(r)
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), EnvShards) {
			t.Errorf("%s=%q: %v, want an error naming it", EnvShards, bad, err)
		}
	}
}

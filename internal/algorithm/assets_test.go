package algorithm

import (
	"strings"
	"testing"
)

func TestAssetsAndLimits(t *testing.T) {
	sum := strings.Repeat("a", 64)
	base := "name: m\nversion: 1.0.0\npool: cpu\nruntime: {type: exec, command: [aigw-echo]}\n"
	d, err := Parse([]byte(base + "limits: {artifact_bytes: 1024}\nassets:\n- {name: llama-3.weights, url: https://example.com/w, sha256: " + sum + ", size: 5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits.ArtifactBytes != 1024 || len(d.Assets) != 1 || AssetEnv(d.Assets[0].Name) != "AIGW_ASSET_LLAMA_3_WEIGHTS" {
		t.Fatalf("%+v", d)
	}
	for _, bad := range []string{
		"assets:\n- {name: '', url: https://e/w, sha256: " + sum + ", size: 5}\n",
		"assets:\n- {name: a/b, url: https://e/w, sha256: " + sum + ", size: 5}\n",
		"assets:\n- {name: w, url: ftp://e/w, sha256: " + sum + ", size: 5}\n",
		"assets:\n- {name: w, url: https://e/w, sha256: ABC, size: 5}\n",
		"assets:\n- {name: w, url: https://e/w, sha256: " + sum + ", size: 0}\n",
		"assets:\n- {name: a-b, url: https://e/w, sha256: " + sum + ", size: 5}\n- {name: a.b, url: https://e/w, sha256: " + sum + ", size: 5}\n",
		"limits: {artifact_bytes: -1}\n",
	} {
		if _, err := Parse([]byte(base + bad)); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

package gpu

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestParse(t *testing.T) {
	out := "0, GPU-aaa, NVIDIA A100-SXM4-80GB, 81920, 1024, 37\n\n" +
		"1, GPU-bbb, NVIDIA A100-SXM4-80GB, 81920 MiB, [N/A], [Not Supported]\r\n"
	gpus, err := Parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 2 {
		t.Fatalf("got %d GPUs", len(gpus))
	}
	g := gpus[0]
	if g.Index != 0 || g.UUID != "GPU-aaa" || g.Name != "NVIDIA A100-SXM4-80GB" || g.MemoryTotalMB != 81920 || g.MemoryUsedMB != 1024 || g.UtilizationPct != 37 {
		t.Errorf("gpu 0: %+v", g)
	}
	if g := gpus[1]; g.Index != 1 || g.MemoryTotalMB != 81920 || g.MemoryUsedMB != 0 || g.UtilizationPct != 0 {
		t.Errorf("gpu 1: %+v", g)
	}
	for _, bad := range []string{"0, GPU-a, name\n", "x, GPU-a, n, 1, 2, 3\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q): want an error", bad)
		}
	}
	if gpus, err := Parse(nil); err != nil || gpus != nil {
		t.Errorf("empty output: %v %v", gpus, err)
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	smi := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\n[ \"$1\" = \"--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu\" ] || exit 2\n" +
		"echo '0, GPU-0, Fake GPU, 16000, 10, 0'\necho '1, GPU-1, Fake GPU, 16000, 20, 5'\n"
	if err := os.WriteFile(smi, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	gpus, err := Discover(context.Background(), smi)
	if err != nil || len(gpus) != 2 || gpus[1].UUID != "GPU-1" {
		t.Fatalf("Discover: %+v %v", gpus, err)
	}
	if gpus, err := Discover(context.Background(), filepath.Join(dir, "missing-smi")); err != nil || gpus != nil {
		t.Fatalf("missing nvidia-smi: %v %v", gpus, err)
	}
	none := filepath.Join(dir, "none-smi")
	if err := os.WriteFile(none, []byte("#!/bin/sh\necho 'No devices were found'\nexit 6\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if gpus, err := Discover(context.Background(), none); err != nil || gpus != nil {
		t.Fatalf("no devices: %v %v", gpus, err)
	}
	broken := filepath.Join(dir, "broken-smi")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'driver mismatch' >&2\nexit 9\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(context.Background(), broken); err == nil {
		t.Fatal("failing nvidia-smi: want an error")
	}
}

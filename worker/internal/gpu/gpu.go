// Package gpu discovers a node's NVIDIA GPUs by running nvidia-smi and parsing
// its CSV output (no cgo, no NVML binding). A node without nvidia-smi, or where
// it finds no GPU, is a CPU-only node.
package gpu

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/registry"
)

// QueryArgs are the nvidia-smi arguments whose output Parse reads.
var QueryArgs = []string{"--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits"}

// Discover runs nvidia-smi (a path, or a name looked up on PATH) and returns the
// GPUs it lists. A missing binary means no GPUs (nil, nil); a binary that fails
// or prints something unreadable is an error.
func Discover(ctx context.Context, smi string) ([]registry.GPU, error) {
	path, err := exec.LookPath(smi)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, exec.ErrDot) || strings.Contains(err.Error(), "no such file") {
			return nil, nil
		}
		return nil, fmt.Errorf("nvidia-smi %s: %w", smi, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, QueryArgs...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// nvidia-smi exits non-zero with "No devices were found" on a node without GPUs.
		if strings.Contains(stdout.String()+stderr.String(), "No devices were found") {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return Parse(stdout.Bytes())
}

// Parse reads nvidia-smi's CSV (QueryArgs): one GPU per line, fields trimmed;
// values nvidia-smi cannot read ("[N/A]", "[Not Supported]") become 0. Blank
// lines are skipped; a line with too few fields or a bad index is an error.
func Parse(out []byte) ([]registry.GPU, error) {
	r := csv.NewReader(bytes.NewReader(out))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var gpus []registry.GPU
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi output: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) < 6 {
			return nil, fmt.Errorf("nvidia-smi output line %d: want 6 fields (index, uuid, name, memory.total, memory.used, utilization.gpu), got %d: %q", line, len(rec), strings.Join(rec, ","))
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		idx, err := strconv.Atoi(rec[0])
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("nvidia-smi output line %d: bad index %q", line, rec[0])
		}
		gpus = append(gpus, registry.GPU{
			Index: idx, UUID: rec[1], Name: rec[2],
			MemoryTotalMB: number(rec[3]), MemoryUsedMB: number(rec[4]), UtilizationPct: number(rec[5]),
		})
	}
	return gpus, nil
}

// number reads a numeric field, tolerating units and unreadable values.
func number(v string) int {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(v), "MiB"), "%"))
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0
	}
	return int(f)
}

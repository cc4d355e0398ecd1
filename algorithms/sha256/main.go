// Command aigw-sha256 is the data-plane reference algorithm (runtime exec):
// it reads {"files": [{"path", "size", "sha256"}, ...]} on stdin (the
// worker's form of {"$file": …} references), hashes each file, prints
// {"files": [{"name", "size", "sha256"}, ...]} and copies the first file to
// $AIGW_OUTPUT_DIR, so that it becomes the job's artifact.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

type file struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type result struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func main() {
	if err := run(os.Stdin, os.Stdout, os.Getenv("AIGW_OUTPUT_DIR")); err != nil {
		fmt.Fprintln(os.Stderr, "sha256:", err)
		os.Exit(1)
	}
}

func run(stdin io.Reader, stdout io.Writer, outDir string) error {
	var in struct {
		Files []file `json:"files"`
	}
	if err := json.NewDecoder(stdin).Decode(&in); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if len(in.Files) == 0 {
		return errors.New("input: files is empty")
	}
	out := struct {
		Files []result `json:"files"`
	}{}
	for i, f := range in.Files {
		if f.Path == "" {
			return fmt.Errorf("input: files[%d] has no path (was it given as {\"$file\": ...}?)", i)
		}
		var copyTo string
		if i == 0 && outDir != "" {
			copyTo = filepath.Join(outDir, filepath.Base(f.Path))
		}
		r, err := hash(f.Path, copyTo)
		if err != nil {
			return err
		}
		if f.SHA256 != "" && r.SHA256 != f.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s, but the worker said %s", f.Path, r.SHA256, f.SHA256)
		}
		out.Files = append(out.Files, r)
	}
	return json.NewEncoder(stdout).Encode(out)
}

// hash reads path once, hashing it and, when copyTo is set, copying it there.
func hash(path, copyTo string) (result, error) {
	src, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	h := sha256.New()
	w := io.Writer(h)
	var dst *os.File
	if copyTo != "" {
		if dst, err = os.Create(copyTo); err != nil {
			return result{}, err
		}
		defer dst.Close()
		w = io.MultiWriter(h, dst)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", path, err)
	}
	if dst != nil {
		if err := dst.Close(); err != nil {
			return result{}, err
		}
	}
	return result{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

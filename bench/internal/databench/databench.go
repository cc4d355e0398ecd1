// Package databench measures aigw's data plane against the same
// S3-compatible store in the same run: a run's file stored as an artifact
// through the worker's artifact store (streamed once, SHA-256 computed on
// the way) beside a plain aws-sdk-go-v2 PutObject of the same file, and a
// download through the presigned URL the job view gives beside a plain
// GetObject; and the dispatch cost of an algorithm asset, cold (downloaded
// into the worker's cache) and cached.
package databench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/worker/agent"
)

// Config of a run.
type Config struct {
	Store     objstore.Config
	FileBytes int64 // the artifact's size
	Rounds    int   // figures are medians over the rounds
	AssetSize int64
}

// Result holds medians.
type Result struct {
	UploadAigwMBps, UploadPlainMBps     float64
	DownloadAigwMBps, DownloadPlainMBps float64
	AssetColdMS, AssetCachedMS          float64 // milliseconds
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Run measures; it uses a bucket of its own, removed at the end.
func Run(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	cfg.Store.Bucket = fmt.Sprintf("aigw-bench-data-%d", time.Now().UnixNano())
	obj, err := objstore.New(cfg.Store)
	if err != nil {
		return res, err
	}
	if err := obj.EnsureBucket(ctx); err != nil {
		return res, err
	}
	defer func() { _ = obj.RemoveBucket(context.WithoutCancel(ctx)) }()
	plain := s3.New(s3.Options{
		Region: cfg.Store.Region, BaseEndpoint: aws.String(cfg.Store.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.Store.AccessKey, cfg.Store.SecretKey, ""),
	})

	dir, err := os.MkdirTemp("", "aigw-databench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	outDir := filepath.Join(dir, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return res, err
	}
	path := filepath.Join(outDir, "result.bin")
	if err := writeRandom(path, cfg.FileBytes); err != nil {
		return res, err
	}
	arts := agent.NewObjectArtifactStore(obj, cfg.FileBytes)

	var upA, upP, downA, downP []float64
	for round := range cfg.Rounds {
		// aigw: the worker's artifact store, as after a run.
		t0 := time.Now()
		saved, err := arts.Save(ctx, outDir, fmt.Sprintf("bench%d", round), 1)
		if err != nil {
			return res, fmt.Errorf("artifact upload: %w", err)
		}
		upA = append(upA, mbps(cfg.FileBytes, time.Since(t0)))
		// plain: PutObject of the same file with the SDK's defaults.
		f, err := os.Open(path)
		if err != nil {
			return res, err
		}
		t0 = time.Now()
		_, err = plain.PutObject(ctx, &s3.PutObjectInput{Bucket: &cfg.Store.Bucket, Key: aws.String(fmt.Sprintf("plain/%d", round)), Body: f, ContentLength: aws.Int64(cfg.FileBytes)})
		f.Close()
		if err != nil {
			return res, fmt.Errorf("plain upload: %w", err)
		}
		upP = append(upP, mbps(cfg.FileBytes, time.Since(t0)))

		// aigw: the presigned URL the job view gives, fetched with net/http;
		// plain: GetObject. Their order alternates by round (the second one
		// of a round finds a warmer store).
		url, _, err := obj.PresignGet(ctx, saved[0].Key, 15*time.Minute, "result.bin")
		if err != nil {
			return res, err
		}
		viaAigw := func() error {
			t0 := time.Now()
			n, err := fetch(ctx, url)
			if err != nil || n != cfg.FileBytes {
				return fmt.Errorf("presigned download: %d bytes, %v", n, err)
			}
			downA = append(downA, mbps(n, time.Since(t0)))
			return nil
		}
		viaPlain := func() error {
			t0 := time.Now()
			out, err := plain.GetObject(ctx, &s3.GetObjectInput{Bucket: &cfg.Store.Bucket, Key: aws.String(fmt.Sprintf("plain/%d", round))})
			if err != nil {
				return fmt.Errorf("plain download: %w", err)
			}
			n, err := io.Copy(io.Discard, out.Body)
			out.Body.Close()
			if err != nil || n != cfg.FileBytes {
				return fmt.Errorf("plain download: %d bytes, %v", n, err)
			}
			downP = append(downP, mbps(n, time.Since(t0)))
			return nil
		}
		order := []func() error{viaAigw, viaPlain}
		if round%2 == 1 {
			order[0], order[1] = viaPlain, viaAigw
		}
		for _, f := range order {
			if err := f(); err != nil {
				return res, err
			}
		}
	}
	res.UploadAigwMBps, res.UploadPlainMBps = median(upA), median(upP)
	res.DownloadAigwMBps, res.DownloadPlainMBps = median(downA), median(downP)

	cold, cached, err := assets(ctx, dir, cfg.AssetSize, cfg.Rounds)
	if err != nil {
		return res, err
	}
	res.AssetColdMS, res.AssetCachedMS = cold, cached
	return res, nil
}

// assets times a run's wait for an asset of size bytes served over HTTP on
// loopback: cold (a fresh cache downloads and checks it) and cached.
func assets(ctx context.Context, dir string, size int64, rounds int) (coldMS, cachedMS float64, err error) {
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return 0, 0, err
	}
	sum := sha256.Sum256(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) }))
	defer srv.Close()
	a := algorithm.Asset{Name: "weights", URL: srv.URL + "/w", SHA256: hex.EncodeToString(sum[:]), Size: size}
	var cold, cached []float64
	for r := range rounds {
		c, err := agent.NewAssetCache(filepath.Join(dir, fmt.Sprintf("cache%d", r)), 4*size, srv.Client())
		if err != nil {
			return 0, 0, err
		}
		for i := range 2 {
			t0 := time.Now()
			_, release, err := c.Get(ctx, a, nil)
			if err != nil {
				return 0, 0, err
			}
			d := time.Since(t0).Seconds() * 1e3
			release()
			if i == 0 {
				cold = append(cold, d)
			} else {
				cached = append(cached, d)
			}
		}
	}
	return median(cold), median(cached), nil
}

func fetch(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET: %s", resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		left -= k
	}
	return f.Close()
}

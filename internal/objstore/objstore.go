// Package objstore is aigw's S3-compatible object store: streamed puts that
// record each object's SHA-256, gets, presigned GET and PUT URLs, and
// deletion by prefix, over aws-sdk-go-v2's S3 client. Any S3 API works
// (versitygw locally and in CI, see scripts/objstore.sh; AWS S3, Hetzner or
// other object storage in production).
//
// Errors of a store that does not answer (refused or dropped connections,
// timeouts, 5xx) match ErrUnavailable, which reports Unavailable() == true, so
// that the HTTP edge answers 503 with Retry-After as for MongoDB and Redis
// outages; a missing object matches ErrNotFound.
package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// PartSize is the size of each part of a multipart put; objects up to it go
// in one PUT (S3 takes up to 5 GiB in one). Large, because a multipart
// upload costs a copy of the parts on completion on versitygw's posix
// backend: a 128 MB artifact went at 56 MB/s in 64 MiB parts, 169 MB/s in one
// PUT (the plain SDK PutObject beside it: 93 and 126 MB/s).
const PartSize = 1 << 30

// Store is one bucket of an S3-compatible store.
type Store struct {
	c       *s3.Client
	presign *s3.PresignClient
	bucket  string
	// partSize is PartSize except in tests.
	partSize int64
}

// New returns a Store for cfg (no request is made; see EnsureBucket).
func New(cfg Config) (*Store, error) {
	if !cfg.Enabled() {
		return nil, errors.New("objstore: no endpoint configured (" + EnvEndpoint + ")")
	}
	if cfg.PublicEndpoint == "" {
		cfg.PublicEndpoint = cfg.Endpoint
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	client := func(endpoint string) *s3.Client {
		return s3.New(s3.Options{
			Region:       cfg.Region,
			BaseEndpoint: aws.String(endpoint),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
			// CRC checksums on every request are an AWS extension that not
			// every S3 server has; aigw records SHA-256 itself.
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
			HTTPClient:                 &http.Client{Transport: transport()},
		})
	}
	return &Store{
		c:        client(cfg.Endpoint),
		presign:  s3.NewPresignClient(client(cfg.PublicEndpoint)),
		bucket:   cfg.Bucket,
		partSize: PartSize,
	}, nil
}

func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// Bucket is the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context) error {
	_, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return wrap("head bucket "+s.bucket, err)
	}
	_, err = s.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return wrap("create bucket "+s.bucket, err)
	}
	return nil
}

// Object describes a stored object.
type Object struct {
	Key    string
	Size   int64
	SHA256 string // hex; empty when the store does not know it (Stat)
}

// unsigned sends a request's body unsigned (UNSIGNED-PAYLOAD), so a body is
// streamed once rather than read twice (once to hash it for the signature).
// The object's SHA-256 is computed while it is sent and kept in its metadata.
var unsigned = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// Put streams size bytes of r to key, in one PUT up to PartSize and as a
// multipart upload above, reading r once. The object's SHA-256 is returned
// and, for a single PUT, kept in its metadata (x-amz-meta-sha256). Reading
// fewer than size bytes is an error and leaves no object.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (Object, error) {
	if size < 0 {
		return Object{}, fmt.Errorf("put %s: negative size %d", key, size)
	}
	h := sha256.New()
	if size <= s.partSize {
		body := &exact{r: io.TeeReader(r, h), left: size}
		_, err := s.c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: body, ContentLength: aws.Int64(size),
		}, unsigned, noRetry)
		if err != nil {
			if body.err != nil {
				return Object{}, fmt.Errorf("put %s: %w", key, body.err)
			}
			return Object{}, wrap("put "+key, err)
		}
		return Object{Key: key, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
	}
	return s.putMultipart(ctx, key, r, size, h)
}

func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, size int64, h hash.Hash) (Object, error) {
	up, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Object{}, wrap("put "+key, err)
	}
	abort := func(err error) (Object, error) {
		// A fresh context: the caller's may be what ended the upload.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = s.c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: up.UploadId})
		return Object{}, err
	}
	var parts []types.CompletedPart
	tee := io.TeeReader(r, h)
	for n, off := int32(1), int64(0); off < size; n++ {
		l := min(s.partSize, size-off)
		body := &exact{r: tee, left: l}
		out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &s.bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: body, ContentLength: aws.Int64(l),
		}, unsigned, noRetry)
		if err != nil {
			if body.err != nil {
				return abort(fmt.Errorf("put %s: %w", key, body.err))
			}
			return abort(wrap("put "+key, err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		off += l
	}
	_, err = s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(wrap("put "+key, err))
	}
	return Object{Key: key, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// noRetry: a streamed body cannot be rewound, so the SDK must not retry a
// request on its own; callers retry whole puts.
func noRetry(o *s3.Options) { o.RetryMaxAttempts = 1 }

// exact reads exactly left bytes from r: fewer is ErrShortBody.
type exact struct {
	r    io.Reader
	left int64
	err  error
}

// ErrShortBody says a put's reader ended before its size.
var ErrShortBody = errors.New("body shorter than its size")

func (e *exact) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = ErrShortBody
		return n, e.err
	}
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Get opens the object at key; the caller closes the body.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, 0, wrap("get "+key, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// Stat returns the object's size.
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Object{}, wrap("stat "+key, err)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength)}, nil
}

// PresignGet returns a URL that downloads key until expires (ttl from now),
// with no other credential. filename, when set, is the name browsers save it
// under (Content-Disposition).
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (string, time.Time, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if filename != "" {
		in.ResponseContentDisposition = aws.String(`attachment; filename="` + strings.NewReplacer(`"`, "", "\\", "", "\n", "", "\r", "").Replace(filename) + `"`)
	}
	expires := time.Now().Add(ttl)
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("presign get %s: %w", key, err)
	}
	return req.URL, expires, nil
}

// PresignPut returns a URL that uploads exactly size bytes to key until
// expires (ttl from now): the signature covers Content-Length, so the store
// refuses another size.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, ttl time.Duration) (string, time.Time, error) {
	expires := time.Now().Add(ttl)
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("presign put %s: %w", key, err)
	}
	return req.URL, expires, nil
}

// Delete removes the object at key; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return wrap("delete "+key, err)
	}
	return nil
}

// List returns the keys under prefix, in order.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("list "+prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// DeletePrefix removes every object whose key starts with prefix (which must
// not be empty) and returns how many it removed.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("delete prefix: empty prefix")
	}
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < len(objs); i += 1000 {
		batch := objs[i:min(i+1000, len(objs))]
		ids := make([]types.ObjectIdentifier, len(batch))
		for j, o := range batch {
			ids[j] = types.ObjectIdentifier{Key: aws.String(o.Key)}
		}
		out, err := s.c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return n, wrap("delete prefix "+prefix, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return n, fmt.Errorf("delete prefix %s: %d objects not deleted, first %s: %s", prefix, len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Message))
		}
		n += len(batch)
	}
	return n, nil
}

// RemoveBucket deletes every object of the bucket and the bucket (tests and
// tear-downs).
func (s *Store) RemoveBucket(ctx context.Context) error {
	objs, err := s.List(ctx, "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	if _, err := s.c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &s.bucket}); err != nil && !isNotFound(err) {
		return wrap("delete bucket "+s.bucket, err)
	}
	return nil
}

// ArtifactPrefix is where a job's artifacts live (every attempt's):
// artifacts/<job>/<attempt>/<name>. Deleting it removes them all.
func ArtifactPrefix(jobID string) string { return "artifacts/" + jobID + "/" }

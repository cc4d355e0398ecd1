package objstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aigw/aigw/internal/envconf"
)

// Settings of the object store, shared by every binary that reaches it: each
// may come from its OpenFaaS secret file (when the reader has a secrets
// directory) or else from its variable.
const (
	EnvEndpoint       = "AIGW_S3_ENDPOINT"
	EnvPublicEndpoint = "AIGW_S3_PUBLIC_ENDPOINT"
	EnvBucket         = "AIGW_S3_BUCKET"
	EnvAccessKey      = "AIGW_S3_ACCESS_KEY"
	EnvSecretKey      = "AIGW_S3_SECRET_KEY"
	EnvRegion         = "AIGW_S3_REGION"

	SecretEndpoint       = "aigw-s3-endpoint"
	SecretPublicEndpoint = "aigw-s3-public-endpoint"
	SecretBucket         = "aigw-s3-bucket"
	SecretAccessKey      = "aigw-s3-access-key"
	SecretSecretKey      = "aigw-s3-secret-key"

	DefaultBucket = "aigw"
	DefaultRegion = "us-east-1"
)

// Config says where the store is and how to sign requests to it.
type Config struct {
	// Endpoint is the store's base URL as aigw reaches it
	// (http://127.0.0.1:7070); empty means no store is configured.
	Endpoint string
	// PublicEndpoint is the base URL presigned URLs are made for, when
	// clients reach the store by another address than aigw does (default:
	// Endpoint). Requests are path-style: <endpoint>/<bucket>/<key>.
	PublicEndpoint string
	Bucket         string
	AccessKey      string
	SecretKey      string
	Region         string
}

// Enabled reports whether a store is configured.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// ReadConfig reads the store's settings (functions: each from its secret
// file first, as Terraform's module objstore provides them). With no endpoint the rest is not
// required and Enabled is false; with one, both keys are required.
func ReadConfig(r *envconf.Reader) Config {
	c := Config{
		Endpoint:       parsed(r, SecretEndpoint, EnvEndpoint, "", parseEndpoint),
		PublicEndpoint: parsed(r, SecretPublicEndpoint, EnvPublicEndpoint, "", parseEndpoint),
		Bucket:         parsed(r, SecretBucket, EnvBucket, DefaultBucket, parseBucket),
		Region:         r.String(EnvRegion, DefaultRegion),
	}
	c.AccessKey = r.Secret(SecretAccessKey, EnvAccessKey)
	c.SecretKey = r.Secret(SecretSecretKey, EnvSecretKey)
	if c.Endpoint != "" && (c.AccessKey == "" || c.SecretKey == "") {
		r.Fail(fmt.Errorf("%s is set: the store's keys are required (secrets %s and %s, or %s and %s)",
			EnvEndpoint, SecretAccessKey, SecretSecretKey, EnvAccessKey, EnvSecretKey))
	}
	return c
}

// parsed reads a setting from its secret file or variable with parse; a bad
// value is an error naming both.
func parsed(r *envconf.Reader, secret, env, def string, parse func(string) (string, error)) string {
	v := r.Secret(secret, env)
	if v == "" {
		return def
	}
	out, err := parse(v)
	if err != nil {
		r.Fail(fmt.Errorf("%s (or secret %s)=%q: %v", env, secret, v, err))
		return def
	}
	return out
}

// parseEndpoint accepts an http(s) base URL with no path, query or
// credentials.
func parseEndpoint(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return "", errors.New("want an http(s) base URL such as http://127.0.0.1:7070 (no path)")
	}
	return strings.TrimSuffix(v, "/"), nil
}

// parseBucket accepts S3 bucket names: 3-63 lowercase letters, digits, '-'
// or '.', starting and ending with a letter or digit.
func parseBucket(v string) (string, error) {
	ok := len(v) >= 3 && len(v) <= 63
	for i, c := range v {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' && c != '.' || i == 0 || i == len(v)-1) {
			ok = false
		}
	}
	if !ok {
		return "", errors.New("want a bucket name: 3-63 lowercase letters, digits, '-' or '.'")
	}
	return v, nil
}

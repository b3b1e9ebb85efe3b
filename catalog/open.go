package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// OpenStore opens the catalog at rawURL, which may be
//
//   - a directory: a plain path ("./catalog", "/srv/catalog") or a
//     file:///abs/path URL; the directory must already exist;
//   - s3://bucket/prefix: an S3 bucket, reached with s3 (Bucket and Prefix
//     there are replaced by the URL's; empty fields are filled by
//     S3ConfigFromEnv);
//   - http(s)://host/path: a read-only catalog served over HTTP.
//
// A path that looks like a URL with another scheme ("foo:bar") is refused;
// write "./foo:bar" to mean a directory.
func OpenStore(ctx context.Context, rawURL string, s3 S3Config) (Store, error) {
	return openStore(ctx, rawURL, s3, false)
}

// OpenOrCreateStore is OpenStore for a catalog about to be written, such as
// by "catalog init": a missing directory is created (mode 0755, with its
// parents). An S3 bucket must already exist. An http(s) URL is refused with
// an error wrapping ErrReadOnly.
func OpenOrCreateStore(ctx context.Context, rawURL string, s3 S3Config) (Store, error) {
	return openStore(ctx, rawURL, s3, true)
}

func openStore(ctx context.Context, rawURL string, s3 S3Config, create bool) (Store, error) {
	if rawURL == "" {
		return nil, errors.New("no catalog location given")
	}
	scheme, dir := "", rawURL
	if i := strings.Index(rawURL, ":"); i > 1 && !strings.ContainsAny(rawURL[:i], "/\\.") {
		// A scheme (single letters are left alone: drive letters).
		scheme = strings.ToLower(rawURL[:i])
	}
	switch scheme {
	case "":
	case "file":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("catalog %q: %w", rawURL, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("catalog %q: file URLs must be local (file:///path)", rawURL)
		}
		if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("catalog %q: file URLs need an absolute path (file:///path); use a plain path for a relative one", rawURL)
		}
		dir = filepath.FromSlash(u.Path)
	case "s3":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("catalog %q: %w", rawURL, err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("catalog %q: no bucket (want s3://bucket/prefix)", rawURL)
		}
		cfg := S3ConfigFromEnv(s3)
		cfg.Bucket = u.Host
		cfg.Prefix = strings.Trim(u.Path, "/")
		return NewS3Store(ctx, cfg)
	case "http", "https":
		if create {
			return nil, fmt.Errorf("catalog %s: cannot write a catalog over HTTP (publish to the directory or bucket behind it): %w", rawURL, ErrReadOnly)
		}
		return NewHTTPStore(rawURL, nil)
	default:
		return nil, fmt.Errorf("catalog %q: unknown scheme %q (want a directory path, file://, s3:// or http(s)://)", rawURL, scheme)
	}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", dir, err)
		}
	}
	return NewDirStore(dir)
}

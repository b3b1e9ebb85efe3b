package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an S3 catalog lives and how to reach it.
type S3Config struct {
	// Endpoint is "host:port" or a URL such as "http://127.0.0.1:9000"
	// (whose scheme then decides Insecure). Empty means AWS
	// (s3.amazonaws.com).
	Endpoint string
	// Bucket is the bucket name; Prefix, if any, is the key prefix inside
	// it under which the catalog lives ("" or e.g. "catalogs/prod").
	Bucket, Prefix string
	// Region is the bucket's region. Empty means "us-east-1" for custom
	// endpoints and auto-detection on AWS.
	Region string
	// AccessKey and SecretKey are required; SessionToken is for temporary
	// credentials.
	AccessKey, SecretKey, SessionToken string
	// Insecure selects http instead of https.
	Insecure bool
	// PublicURL, if set, is the base URL under which anonymous readers find
	// the catalog root (the bucket and prefix), e.g. a CDN. ObjectURL then
	// returns PublicURL + "/" + key instead of the endpoint's path-style
	// URL.
	PublicURL string
}

// S3ConfigFromEnv returns c with its empty fields filled from the standard
// AWS environment variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION) and
// AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL). The session token is taken
// from the environment only together with an access key from there, so
// that a key given explicitly is never paired with someone else's token.
func S3ConfigFromEnv(c S3Config) S3Config {
	if c.AccessKey == "" && c.SecretKey == "" {
		c.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
		c.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		if c.SessionToken == "" {
			c.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
		}
	}
	if c.Region == "" {
		c.Region = firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if c.Endpoint == "" {
		c.Endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	return c
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// S3Store is a Store in an S3 bucket, under an optional key prefix. It
// uses path-style addressing (endpoint/bucket/key), which every S3 server
// understands, versitygw and MinIO included.
//
// An S3Store is safe for concurrent use.
type S3Store struct {
	client    *minio.Client
	bucket    string
	prefix    string // "" or ends with "/"
	publicURL string // "" or without trailing "/"
}

var (
	_ Store = (*S3Store)(nil)
	_ URLer = (*S3Store)(nil)
)

// s3ProbeTimeout bounds the reachability and bucket check in NewS3Store.
const s3ProbeTimeout = 10 * time.Second

// NewS3Store connects to the bucket described by cfg. It checks, within a
// few seconds, that the endpoint answers, that the credentials are
// accepted and that the bucket exists, and says which of these failed.
// cfg is used as given; call S3ConfigFromEnv first to honour the AWS
// environment variables.
func NewS3Store(ctx context.Context, cfg S3Config) (*S3Store, error) {
	host, secure, err := parseS3Endpoint(cfg.Endpoint, !cfg.Insecure)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	where := fmt.Sprintf("s3 endpoint %s://%s", scheme, host)
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%s: no bucket given", where)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("no S3 credentials: set --s3-access-key/--s3-secret-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := CleanKey(prefix); err != nil {
			return nil, fmt.Errorf("%s bucket %s: bad prefix: %w", where, cfg.Bucket, err)
		}
		prefix += "/"
	}
	region := cfg.Region
	if region == "" && host != "s3.amazonaws.com" {
		region = "us-east-1"
	}
	opts := &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       secure,
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
	}
	client, err := minio.New(host, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	s := &S3Store{
		client:    client,
		bucket:    cfg.Bucket,
		prefix:    prefix,
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
	}

	// Probe with few retries so that a dead endpoint fails fast.
	probeOpts := *opts
	probeOpts.MaxRetries = 2
	probe, err := minio.New(host, &probeOpts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, s3ProbeTimeout)
	defer cancel()
	ok, err := probe.BucketExists(pctx, cfg.Bucket)
	if err != nil {
		if er, isS3 := asS3Error(err); isS3 {
			switch er.Code {
			case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "Forbidden":
				return nil, fmt.Errorf("%s bucket %s: credentials refused (check the access key, secret key and session token): %w", where, cfg.Bucket, err)
			}
			if er.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%s bucket %s: credentials refused (check the access key, secret key and session token): %w", where, cfg.Bucket, err)
			}
			return nil, fmt.Errorf("%s bucket %s: %w", where, cfg.Bucket, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", where, ctx.Err())
		}
		return nil, fmt.Errorf("%s: unreachable: %w", where, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: bucket %s does not exist", where, cfg.Bucket)
	}
	return s, nil
}

// parseS3Endpoint turns an endpoint setting into minio's host[:port] and
// the https flag. secure is the default when the endpoint has no scheme.
func parseS3Endpoint(endpoint string, secure bool) (host string, isSecure bool, err error) {
	if endpoint == "" {
		return "s3.amazonaws.com", secure, nil
	}
	if !strings.Contains(endpoint, "://") {
		if strings.ContainsAny(endpoint, "/?#") {
			return "", false, fmt.Errorf("s3 endpoint %q: want host:port or a URL such as http://host:port", endpoint)
		}
		return endpoint, secure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "http":
		secure = false
	case "https":
		secure = true
	default:
		return "", false, fmt.Errorf("s3 endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: want only scheme, host and port (the bucket goes elsewhere)", endpoint)
	}
	return u.Host, secure, nil
}

// String names the bucket, prefix and endpoint.
func (s *S3Store) String() string {
	return fmt.Sprintf("s3://%s/%s (%s)", s.bucket, s.prefix, s.client.EndpointURL())
}

// Bucket returns the bucket name.
func (s *S3Store) Bucket() string { return s.bucket }

// Prefix returns the key prefix inside the bucket: "" or a path ending in
// "/".
func (s *S3Store) Prefix() string { return s.prefix }

func (s *S3Store) object(key string) (string, error) {
	if err := CleanKey(key); err != nil {
		return "", fmt.Errorf("%s: %w", s, err)
	}
	return s.prefix + key, nil
}

func asS3Error(err error) (minio.ErrorResponse, bool) {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code != "" || er.StatusCode != 0) {
		return er, true
	}
	var erp *minio.ErrorResponse
	if errors.As(err, &erp) && erp != nil {
		return *erp, true
	}
	return minio.ErrorResponse{}, false
}

// objErr wraps err from an operation on key, mapping a missing object to
// ErrNotFound.
func (s *S3Store) objErr(op, key string, err error) error {
	if er, ok := asS3Error(err); ok {
		if er.Code == minio.NoSuchKey || (er.StatusCode == http.StatusNotFound && er.Code != minio.NoSuchBucket) {
			return fmt.Errorf("%s %s in %s: %w", op, key, s, ErrNotFound)
		}
		if er.Code == minio.InvalidRange || er.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return fmt.Errorf("%s %s in %s: offset at or past the end of the object: %w", op, key, s, err)
		}
	}
	return fmt.Errorf("%s %s in %s: %w", op, key, s, err)
}

// Put implements Store. S3 replaces objects atomically; objects larger
// than minio-go's part size go up as a multipart upload, which becomes
// visible only when complete. A reader that is shorter or longer than size
// makes the upload fail before it completes.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.putObject(ctx, key, r, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
}

// PutIfAbsent implements CreateOnlyStore with a conditional PutObject
// (If-None-Match: *), which S3 and versitygw (v1.8.0, tested) answer with
// 412 Precondition Failed when the key exists. It is always one request,
// never a multipart upload, so the condition covers the whole object
// (catalog metadata is far below the 5 GiB single-request limit).
func (s *S3Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	err := s.putObject(ctx, key, r, size, opts)
	if er, ok := asS3Error(err); ok && (er.StatusCode == http.StatusPreconditionFailed || er.StatusCode == http.StatusConflict) {
		// 409 is S3's answer to a conditional write racing another
		// one on the same key: this writer did not win either.
		return fmt.Errorf("put %s in %s: %w", key, s, ErrExists)
	}
	return err
}

// putObject uploads exactly size bytes of r to key with opts. A reader that
// is shorter or longer than size makes the upload fail; the error wraps
// minio's so that callers can tell its status.
func (s *S3Store) putObject(ctx context.Context, key string, r io.Reader, size int64, opts minio.PutObjectOptions) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s in %s: negative size %d", key, s, size)
	}
	er := newExactReader(ctx, r, size)
	if size == 0 {
		// minio-go does not read the body of an empty object at all.
		if _, err := er.Read(nil); err != io.EOF {
			return fmt.Errorf("put %s in %s: %w", key, s, err)
		}
	}
	if _, err := s.client.PutObject(ctx, s.bucket, name, er, size, opts); err != nil {
		return fmt.Errorf("put %s in %s: %w", key, s, err)
	}
	return nil
}

// Copy implements Copier with a server-side copy. ComposeObject with one
// source is a plain CopyObject up to S3's 5 GiB limit for it and a
// multipart copy (UploadPartCopy) above, so large payload files copy too.
func (s *S3Store) Copy(ctx context.Context, src, dst string) error {
	srcName, err := s.object(src)
	if err != nil {
		return err
	}
	dstName, err := s.object(dst)
	if err != nil {
		return err
	}
	_, err = s.client.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: dstName},
		minio.CopySrcOptions{Bucket: s.bucket, Object: srcName})
	if err != nil {
		return s.objErr("copy", src, err)
	}
	return nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.get(ctx, key, minio.GetObjectOptions{})
}

func (s *S3Store) get(ctx context.Context, key string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	rc, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, name, opts)
	if err != nil {
		return nil, s.objErr("get", key, err)
	}
	return rc, nil
}

// GetRange implements Store.
func (s *S3Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	switch {
	case offset < 0:
		return nil, fmt.Errorf("get %s in %s: negative offset %d", key, s, offset)
	case offset == 0 && length < 0:
		return s.Get(ctx, key)
	case length == 0:
		fi, err := s.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := rangeLength(fi.Size, offset, length); err != nil {
			return nil, fmt.Errorf("get %s in %s: %w", key, s, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	end := int64(0) // "bytes=offset-"
	if length > 0 {
		end = offset + length - 1
	}
	if err := opts.SetRange(offset, end); err != nil {
		return nil, fmt.Errorf("get %s in %s: %w", key, s, err)
	}
	return s.get(ctx, key, opts)
}

// Stat implements Store.
func (s *S3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	name, err := s.object(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.objErr("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: oi.Size}, nil
}

// List implements Store. Keys that are not valid store keys (such as the
// "dir/" markers some tools create) are left out.
func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio's lister if we return early
	out := []ObjectInfo{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    s.prefix + prefix,
		Recursive: true,
	}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("list %q in %s: %w", prefix, s, oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || CleanKey(key) != nil {
			continue
		}
		out = append(out, ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified})
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if er, ok := asS3Error(err); ok && er.Code == minio.NoSuchKey {
			return nil
		}
		return fmt.Errorf("delete %s in %s: %w", key, s, err)
	}
	return nil
}

// ObjectURL returns the anonymous URL of key: PublicURL + "/" + key when
// PublicURL is configured, else the path-style URL
// endpoint/bucket/prefix/key. Either only works for anonymous readers once
// the objects are public (see SetPublicRead); PresignGet gives a URL that
// works without that. ObjectURL returns "" for an invalid key.
func (s *S3Store) ObjectURL(key string) string {
	if CleanKey(key) != nil {
		return ""
	}
	if s.publicURL != "" {
		return s.publicURL + "/" + escapeKey(key)
	}
	u := s.client.EndpointURL()
	return u.Scheme + "://" + u.Host + "/" + escapeKey(s.bucket) + "/" + escapeKey(s.prefix+key)
}

// PresignGet returns a URL that lets anyone GET (with Range) key for ttl,
// which must be between one second and seven days. It does not check that
// the object exists.
func (s *S3Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	name, err := s.object(key)
	if err != nil {
		return "", err
	}
	if ttl < time.Second || ttl > 7*24*time.Hour {
		return "", fmt.Errorf("presign %s in %s: ttl %v is not between 1s and 7 days", key, s, ttl)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, name, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("presign %s in %s: %w", key, s, err)
	}
	return u.String(), nil
}

// publicReadSid names the policy statement SetPublicRead manages.
const publicReadSid = "SwarmshipPublicRead"

// SetPublicRead lets anonymous readers GET (and HEAD) every object under
// the store's prefix, so that ObjectURL works as a web seed. It adds, or
// replaces, one statement (Sid "SwarmshipPublicRead…", one per prefix) in
// the bucket policy and keeps the others; anonymous listing and writing
// stay forbidden.
func (s *S3Store) SetPublicRead(ctx context.Context) error {
	old, err := s.client.GetBucketPolicy(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("set public read on %s: get bucket policy: %w", s, err)
	}
	policy := map[string]any{"Version": "2012-10-17"}
	if strings.TrimSpace(old) != "" {
		if err := json.Unmarshal([]byte(old), &policy); err != nil {
			return fmt.Errorf("set public read on %s: existing bucket policy: %w", s, err)
		}
	}
	sid := publicReadSid
	if s.prefix != "" {
		h := sha256.Sum256([]byte(s.prefix))
		sid += hex.EncodeToString(h[:8])
	}
	var stmts []any
	switch v := policy["Statement"].(type) {
	case []any:
		for _, st := range v {
			if m, ok := st.(map[string]any); ok && m["Sid"] == sid {
				continue
			}
			stmts = append(stmts, st)
		}
	case map[string]any:
		if v["Sid"] != sid {
			stmts = append(stmts, v)
		}
	}
	stmts = append(stmts, map[string]any{
		"Sid":       sid,
		"Effect":    "Allow",
		"Principal": map[string]any{"AWS": []string{"*"}},
		"Action":    []string{"s3:GetObject"},
		"Resource":  []string{"arn:aws:s3:::" + s.bucket + "/" + s.prefix + "*"},
	})
	policy["Statement"] = stmts
	b, err := json.Marshal(policy)
	if err != nil {
		return fmt.Errorf("set public read on %s: %w", s, err)
	}
	if err := s.client.SetBucketPolicy(ctx, s.bucket, string(b)); err != nil {
		return fmt.Errorf("set public read on %s: %w", s, err)
	}
	return nil
}

// escapeKey percent-encodes every byte of each slash-separated segment
// except the unreserved characters of RFC 3986, as S3's signature rules
// do, so that "+", spaces and non-ASCII keys reach every server intact.
func escapeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

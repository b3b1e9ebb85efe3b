package catalog

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/minio/minio-go/v7"
)

// checkParts validates parts against the minimum part size and returns
// their total length.
func checkParts(parts []Part, minPart int64) (int64, error) {
	var total int64
	for i, p := range parts {
		if p.Len <= 0 || p.Off < 0 {
			return 0, fmt.Errorf("part %d: bad range (offset %d, length %d)", i, p.Off, p.Len)
		}
		if (p.Src == "") == (p.R == nil) {
			return 0, fmt.Errorf("part %d: give a source object or a reader, not both or neither", i)
		}
		if p.Len < minPart && i < len(parts)-1 {
			return 0, fmt.Errorf("part %d: %d bytes, less than the %d-byte minimum for parts but the last", i, p.Len, minPart)
		}
		total += p.Len
	}
	return total, nil
}

// MinPartSize implements Composer: any length will do on a directory.
func (d *DirStore) MinPartSize() int64 { return 1 }

// Compose implements Composer. The object is written like Put (a synced
// temporary file renamed over dst); ranges of other objects are read on
// this host, so only the readers' bytes come from the caller.
func (d *DirStore) Compose(ctx context.Context, dst string, parts []Part) error {
	total, err := checkParts(parts, 1)
	if err != nil {
		return fmt.Errorf("compose %s in %s: %w", dst, d, err)
	}
	readers := make([]io.Reader, 0, len(parts))
	// One descriptor per source object, however many ranges it gives.
	type opened struct {
		f    *os.File
		size int64
	}
	open := map[string]opened{}
	defer func() {
		for _, o := range open {
			o.f.Close()
		}
	}()
	for _, p := range parts {
		if p.Src == "" {
			readers = append(readers, io.LimitReader(p.R, p.Len))
			continue
		}
		o, ok := open[p.Src]
		if !ok {
			f, size, err := d.openObject(ctx, "compose", p.Src)
			if err != nil {
				return err
			}
			o = opened{f, size}
			open[p.Src] = o
		}
		f, size := o.f, o.size
		if p.Off > size-p.Len {
			return fmt.Errorf("compose %s in %s: range %d+%d is outside %s (%d bytes)", dst, d, p.Off, p.Len, p.Src, size)
		}
		readers = append(readers, io.NewSectionReader(f, p.Off, p.Len))
	}
	return d.write(ctx, dst, io.MultiReader(readers...), total, false)
}

// S3 multipart limits.
const (
	s3MinPart  = 5 << 20
	s3MaxPart  = 5 << 30
	s3MaxParts = 10000
)

// MinPartSize implements Composer: S3 takes parts of 5 MiB or more but
// the last.
func (s *S3Store) MinPartSize() int64 { return s3MinPart }

// Compose implements Composer with a multipart upload whose parts are
// server-side copies of ranges (UploadPartCopy) or uploads of the readers'
// bytes. The object appears only when the upload completes; a failed one
// is aborted.
func (s *S3Store) Compose(ctx context.Context, dst string, parts []Part) error {
	if _, err := checkParts(parts, s3MinPart); err != nil {
		return fmt.Errorf("compose %s in %s: %w", dst, s, err)
	}
	name, err := s.object(dst)
	if err != nil {
		return err
	}
	// Parts above S3's 5 GiB limit go as several of equal size.
	var split []Part
	for _, p := range parts {
		n := (p.Len + s3MaxPart - 1) / s3MaxPart
		for i := range n {
			lo, hi := p.Len*i/n, p.Len*(i+1)/n
			q := p
			q.Off, q.Len = p.Off+lo, hi-lo
			split = append(split, q)
		}
	}
	if len(split) > s3MaxParts {
		return fmt.Errorf("compose %s in %s: %d parts, more than S3's %d", dst, s, len(split), s3MaxParts)
	}
	core := minio.Core{Client: s.client}
	id, err := core.NewMultipartUpload(ctx, s.bucket, name, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("compose %s in %s: %w", dst, s, err)
	}
	done := false
	defer func() {
		if !done {
			core.AbortMultipartUpload(context.WithoutCancel(ctx), s.bucket, name, id)
		}
	}()
	completed := make([]minio.CompletePart, 0, len(split))
	for i, p := range split {
		num := i + 1
		if p.Src != "" {
			src, err := s.object(p.Src)
			if err != nil {
				return err
			}
			cp, err := core.CopyObjectPart(ctx, s.bucket, src, s.bucket, name, id, num, p.Off, p.Len, nil)
			if err != nil {
				return s.objErr("compose from", p.Src, err)
			}
			completed = append(completed, minio.CompletePart{PartNumber: num, ETag: cp.ETag})
			continue
		}
		var body io.Reader = newExactReader(ctx, io.LimitReader(p.R, p.Len), p.Len)
		if sr, ok := p.R.(*io.SectionReader); ok && sr.Size() == p.Len {
			body = sr // seekable: minio-go can retry the part
		}
		op, err := core.PutObjectPart(ctx, s.bucket, name, id, num, body, p.Len, minio.PutObjectPartOptions{})
		if err != nil {
			return fmt.Errorf("compose %s in %s: part %s: %w", dst, s, strconv.Itoa(num), err)
		}
		completed = append(completed, minio.CompletePart{PartNumber: num, ETag: op.ETag})
	}
	if _, err := core.CompleteMultipartUpload(ctx, s.bucket, name, id, completed, minio.PutObjectOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("compose %s in %s: %w", dst, s, err)
	}
	done = true
	return nil
}

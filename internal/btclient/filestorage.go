package btclient

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// NewFileStorage is storage.NewFileOpts (with its default path makers:
// files at ClientBaseDir/<name>/<path>) that keeps zero-length files out
// of the library's view of the files and creates them itself.
//
// anacrolix/torrent v1.59.1 writes through mmap and maps every file that a
// write spans, zero-length files included; mapping an empty file fails
// with EINVAL, so a block spanning an empty file in the middle of a
// torrent could never be written and the download never completed.
// Empty files hold no bytes, so leaving them out changes no offset.
func NewFileStorage(opts storage.NewFileClientOpts) storage.ClientImplCloser {
	return skipEmptyFiles{ClientImplCloser: storage.NewFileOpts(opts), base: opts.ClientBaseDir}
}

type skipEmptyFiles struct {
	storage.ClientImplCloser
	base string
}

func (s skipEmptyFiles) OpenTorrent(ctx context.Context, info *metainfo.Info, infoHash metainfo.Hash) (storage.TorrentImpl, error) {
	if info == nil || info.HasV2() || len(info.Files) == 0 {
		return s.ClientImplCloser.OpenTorrent(ctx, info, infoHash)
	}
	kept := make([]metainfo.FileInfo, 0, len(info.Files))
	var empty []metainfo.FileInfo
	for _, f := range info.Files {
		if f.Length == 0 {
			empty = append(empty, f)
		} else {
			kept = append(kept, f)
		}
	}
	if len(empty) == 0 || len(kept) == 0 {
		return s.ClientImplCloser.OpenTorrent(ctx, info, infoHash)
	}
	for _, f := range empty {
		rel := filepath.Join(append([]string{info.BestName()}, f.BestPath()...)...)
		if !filepath.IsLocal(rel) {
			return storage.TorrentImpl{}, fmt.Errorf("file %q is not inside the torrent's directory", rel)
		}
		if err := storage.CreateNativeZeroLengthFile(filepath.Join(s.base, rel)); err != nil {
			return storage.TorrentImpl{}, fmt.Errorf("creating zero-length file: %w", err)
		}
	}
	trimmed := *info
	trimmed.Files = kept
	return s.ClientImplCloser.OpenTorrent(ctx, &trimmed, infoHash)
}

package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Retry policy for connection drops and 5xx/429 answers. Variables so that
// tests can shorten them.
var (
	maxRetries  = 5                      // consecutive failed attempts without progress
	retryBase   = 500 * time.Millisecond // doubled per attempt
	retryMax    = 10 * time.Second
	idleTimeout = 60 * time.Second // a body that delivers nothing this long is dropped
)

type client struct {
	http     *http.Client
	endpoint *url.URL
	token    string
	cacheDir string
	offline  bool
	progress io.Writer
}

func newClient(opts Options) *client {
	c := &client{
		token:    token(opts),
		cacheDir: CacheDir(opts),
		offline:  opts.Offline || envTrue("HF_HUB_OFFLINE"),
		progress: opts.Progress,
	}
	ep := opts.Endpoint
	if ep == "" {
		ep = os.Getenv("HF_ENDPOINT")
	}
	if ep == "" {
		ep = DefaultEndpoint
	}
	c.endpoint, _ = url.Parse(strings.TrimRight(ep, "/")) // a bad endpoint fails at the first request
	if c.endpoint == nil {
		c.endpoint = &url.URL{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	c.http = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// checkRedirect keeps HEAD on the hub (its Location is read, not followed)
// and lets GET follow to the CDN without the token: Go only strips
// Authorization across hostnames, not across ports of one host.
func (c *client) checkRedirect(req *http.Request, via []*http.Request) error {
	if via[0].Method == http.MethodHead {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != c.endpoint.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

func (c *client) newRequest(ctx context.Context, method string, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "llamaembed-hub/1")
	// Sizes and hashes are of the raw bytes; compression would break both
	// and Range resumes.
	req.Header.Set("Accept-Encoding", "identity")
	if c.token != "" && u.Host == c.endpoint.Host {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *client) resolveURL(ref Ref, file string) (*url.URL, error) {
	return url.Parse(strings.TrimRight(c.endpoint.String(), "/") + "/" + ref.ID + "/resolve/" + url.PathEscape(ref.Revision) + "/" + escapePath(file))
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// download fetches the files of ref into the cache and returns the snapshot.
func (c *client) download(ctx context.Context, ref Ref, repoDir string) (string, error) {
	if c.endpoint.Scheme != "http" && c.endpoint.Scheme != "https" {
		return "", fmt.Errorf("hub endpoint %q (HF_ENDPOINT) is not an http(s) URL", c.endpoint)
	}
	// config.json goes first: it is required, and its X-Repo-Commit pins
	// the commit every other file is fetched at, so a branch that moves
	// mid-download cannot mix two revisions.
	meta, err := c.head(ctx, ref, configFile)
	if errors.Is(err, errEntryNotFound) {
		return "", fmt.Errorf("%s: repository or revision not found, or it has no %s: %w", ref, configFile, err)
	}
	if err != nil {
		return "", err
	}
	commit := meta.commit
	if !isCommit(commit) {
		return "", fmt.Errorf("%s: the hub sent X-Repo-Commit %q, not a commit sha (is %s a Hugging Face hub?)", ref, commit, c.endpoint)
	}
	if ref.Revision != commit {
		if err := writeRef(repoDir, ref.Revision, commit); err != nil {
			return "", err
		}
	}
	pinned := Ref{ID: ref.ID, Revision: commit}
	if err := c.fetch(ctx, repoDir, commit, configFile, meta); err != nil {
		return "", err
	}
	for _, f := range optionalFiles {
		meta, err := c.head(ctx, pinned, f)
		if errors.Is(err, errEntryNotFound) {
			if err := markMissing(repoDir, commit, f); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", err
		}
		if err := c.fetch(ctx, repoDir, commit, f, meta); err != nil {
			return "", err
		}
	}

	meta, err = c.head(ctx, pinned, weightFile)
	if err == nil {
		err = c.fetch(ctx, repoDir, commit, weightFile, meta)
	} else if errors.Is(err, errEntryNotFound) {
		err = c.fetchSharded(ctx, repoDir, pinned)
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(repoDir, "snapshots", commit), nil
}

func (c *client) fetchSharded(ctx context.Context, repoDir string, ref Ref) error {
	meta, err := c.head(ctx, ref, indexFile)
	if errors.Is(err, errEntryNotFound) {
		return fmt.Errorf("%s has no safetensors weights (neither %s nor %s); .bin checkpoints are not supported, convert the model to safetensors", ref.ID, weightFile, indexFile)
	}
	if err != nil {
		return err
	}
	if meta.size > maxIndexSize {
		return fmt.Errorf("%s: %s is %d bytes, more than the %d a safetensors index may have", ref, indexFile, meta.size, maxIndexSize)
	}
	if err := c.fetch(ctx, repoDir, ref.Revision, indexFile, meta); err != nil {
		return err
	}
	shards, err := readShards(filepath.Join(repoDir, "snapshots", ref.Revision, indexFile))
	if err != nil {
		return err
	}
	for _, s := range shards {
		meta, err := c.head(ctx, ref, s)
		if errors.Is(err, errEntryNotFound) {
			return fmt.Errorf("%s: %s names the shard %s, which the repo does not have", ref, indexFile, s)
		}
		if err != nil {
			return err
		}
		if err := c.fetch(ctx, repoDir, ref.Revision, s, meta); err != nil {
			return err
		}
	}
	return nil
}

// fileMeta is what a HEAD on the resolve endpoint tells about one file.
type fileMeta struct {
	name   string
	commit string   // X-Repo-Commit
	etag   string   // X-Linked-Etag (LFS: the sha256) or ETag, unquoted
	size   int64    // X-Linked-Size or Content-Length; -1 if unknown
	get    *url.URL // where to GET: the redirect Location, else the resolve URL
}

var errEntryNotFound = errors.New("file not found")

// head asks the hub about one file without following its redirect to the
// CDN. Relative redirects (a renamed repo) are followed, like
// huggingface_hub does.
func (c *client) head(ctx context.Context, ref Ref, file string) (fileMeta, error) {
	u, err := c.resolveURL(ref, file)
	if err != nil {
		return fileMeta{}, fmt.Errorf("bad hub endpoint %q: %w", c.endpoint, err)
	}
	for hops := 0; ; hops++ {
		var resp *http.Response
		err := retry(ctx, func() (bool, error) {
			req, err := c.newRequest(ctx, http.MethodHead, u)
			if err != nil {
				return false, &permanentError{err}
			}
			resp, err = c.http.Do(req)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			if retryableStatus(resp.StatusCode) {
				return false, statusError(ref, file, c.token != "", resp)
			}
			return false, nil
		})
		if err != nil {
			return fileMeta{}, fmt.Errorf("HEAD %s: %w", u.Redacted(), err)
		}
		loc := resp.Header.Get("Location")
		isRedirect := resp.StatusCode >= 300 && resp.StatusCode < 400
		if isRedirect && loc == "" {
			return fileMeta{}, fmt.Errorf("HEAD %s: %s without a Location header", u.Redacted(), resp.Status)
		}
		var next *url.URL
		if isRedirect {
			if next, err = u.Parse(loc); err != nil {
				return fileMeta{}, fmt.Errorf("HEAD %s: bad Location %q: %w", u.Redacted(), loc, err)
			}
		}
		if isRedirect && !isAbsURL(loc) {
			if hops >= 5 {
				return fileMeta{}, fmt.Errorf("HEAD %s: more than 5 relative redirects", u.Redacted())
			}
			u = next
			continue
		}
		if resp.StatusCode >= 400 {
			return fileMeta{}, statusError(ref, file, c.token != "", resp)
		}
		m := fileMeta{name: file, commit: resp.Header.Get("X-Repo-Commit"), get: u, size: -1}
		if next != nil {
			m.get = next
		}
		m.etag = resp.Header.Get("X-Linked-Etag")
		if m.etag == "" {
			m.etag = resp.Header.Get("ETag")
		}
		m.etag = strings.Trim(strings.TrimPrefix(m.etag, "W/"), `"`)
		if m.etag == "" || m.etag == "." || m.etag == ".." || strings.ContainsAny(m.etag, `/\`) || len(m.etag) > 200 {
			return fileMeta{}, fmt.Errorf("HEAD %s: no usable ETag (got %q); is %s a Hugging Face hub?", u.Redacted(), m.etag, c.endpoint)
		}
		sz := resp.Header.Get("X-Linked-Size")
		if sz == "" && !isRedirect {
			sz = resp.Header.Get("Content-Length")
		}
		if sz != "" {
			if m.size, err = strconv.ParseInt(sz, 10, 64); err != nil || m.size < 0 {
				return fileMeta{}, fmt.Errorf("HEAD %s: bad size %q", u.Redacted(), sz)
			}
		}
		return m, nil
	}
}

func isAbsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != ""
}

func retryableStatus(code int) bool { return code >= 500 || code == http.StatusTooManyRequests }

// statusError turns a hub error answer into an error the user can act on.
// The hub names the cause in X-Error-Code; a missing repo can come back as
// 401 so that private repos do not leak.
func statusError(ref Ref, file string, haveToken bool, resp *http.Response) error {
	code := resp.Header.Get("X-Error-Code")
	detail := ""
	if m := resp.Header.Get("X-Error-Message"); m != "" {
		detail = " (hub: " + m + ")"
	}
	tokenHint := "set HF_TOKEN to a token with read access"
	if haveToken {
		tokenHint = "check that the token in HF_TOKEN has access"
	}
	switch {
	case code == "RepoNotFound":
		return fmt.Errorf("repository not found: %s (if it is private or gated, %s)%s", ref.ID, tokenHint, detail)
	case code == "RevisionNotFound":
		return fmt.Errorf("revision %q not found in %s%s", ref.Revision, ref.ID, detail)
	case code == "GatedRepo" || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("access to %s denied (%s): it is gated or private; accept its terms on the hub page and %s%s", ref.ID, resp.Status, tokenHint, detail)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("unauthorized for %s (%s): the repo may be private or gated; %s%s", ref.ID, resp.Status, tokenHint, detail)
	case code == "EntryNotFound" || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s in %s: %w%s", file, ref, errEntryNotFound, detail)
	}
	return fmt.Errorf("%s in %s: unexpected answer %s%s", file, ref, resp.Status, detail)
}

// unreachableError marks a failure to talk to the hub at all, as opposed
// to an answer we did not like.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return "hub unreachable: " + e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// retry runs try until it succeeds, returns a non-retryable error, or has
// failed maxRetries times in a row. try reports whether it made progress
// (which resets the count) and returns either a plain error (a connection
// problem: retried) or a *permanentError (not retried). HTTP status errors
// reach retry only when they are retryable.
func retry(ctx context.Context, try func() (progressed bool, err error)) error {
	failures := 0
	for {
		progressed, err := try()
		if err == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		failures++
		if failures > maxRetries {
			return &unreachableError{fmt.Errorf("giving up after %d attempts: %w", failures, err)}
		}
		wait := min(retryBase<<(failures-1), retryMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// fetch makes snapshots/<commit>/<file> point at a complete blob,
// downloading the blob unless the cache already has it at the right size.
// commit is the one pinned by the first HEAD, not each answer's own.
func (c *client) fetch(ctx context.Context, repoDir, commit, file string, m fileMeta) error {
	blob := filepath.Join(repoDir, "blobs", m.etag)
	if fi, err := os.Stat(blob); err != nil || (m.size >= 0 && fi.Size() != m.size) {
		if err := c.downloadBlob(ctx, blob, m); err != nil {
			return fmt.Errorf("download %s: %w", file, err)
		}
	}
	return link(repoDir, commit, file, m.etag)
}

// downloadBlob streams m into blob via blob.incomplete, resuming from what
// that file already holds, and checks size and (for LFS files) sha256
// before the rename makes it visible.
func (c *client) downloadBlob(ctx context.Context, blob string, m fileMeta) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	tmp := blob + ".incomplete"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	var h *countingHash
	if sha256Hex.MatchString(m.etag) {
		h = &countingHash{h: sha256.New()}
	}
	bar := newProgress(c.progress, m.name, m.size)
	err = retry(ctx, func() (bool, error) { return c.getOnce(ctx, f, m, h, bar) })
	bar.finish(err == nil)
	if err != nil {
		return err // the partial file stays for the next resume
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if m.size >= 0 && fi.Size() != m.size {
		os.Remove(tmp)
		return fmt.Errorf("got %d bytes, the hub announced %d", fi.Size(), m.size)
	}
	if h != nil {
		if err := h.catchUp(f, fi.Size()); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.h.Sum(nil)); got != m.etag {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("sha256 mismatch: got %s, the hub's ETag says %s; the corrupt download was deleted", got, m.etag)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, blob)
}

// getOnce makes one GET for the rest of the file, appending to f. A
// connection problem comes back as a plain error so that retry resumes.
func (c *client) getOnce(ctx context.Context, f *os.File, m fileMeta, h *countingHash, bar *progress) (progressed bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, &permanentError{err}
	}
	off := fi.Size()
	if m.size >= 0 && off > m.size { // not a prefix of this file
		off = 0
	}
	if m.size >= 0 && off == m.size && off > 0 {
		return false, nil // complete already
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, m.get)
	if err != nil {
		return false, &permanentError{err}
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			return false, &permanentError{fmt.Errorf("asked for bytes from %d, got Content-Range %q", off, resp.Header.Get("Content-Range"))}
		}
	case resp.StatusCode == http.StatusOK:
		off = 0 // the server ignored Range: start over
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		if err := f.Truncate(0); err != nil {
			return false, &permanentError{err}
		}
		return false, fmt.Errorf("range from %d not satisfiable; restarting", off)
	case retryableStatus(resp.StatusCode):
		return false, fmt.Errorf("GET %s: %s", resp.Request.URL.Redacted(), resp.Status)
	default:
		return false, &permanentError{fmt.Errorf("GET %s: %s", resp.Request.URL.Redacted(), resp.Status)}
	}
	if err := f.Truncate(off); err != nil {
		return false, &permanentError{err}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, &permanentError{err}
	}
	bar.set(off)
	var dst io.Writer = f
	if h != nil {
		if err := h.catchUp(f, off); err != nil {
			return false, &permanentError{err}
		}
		dst = io.MultiWriter(f, h)
	}
	body := io.Reader(resp.Body)
	if m.size >= 0 {
		body = io.LimitReader(body, m.size-off+1) // one byte more shows an overlong body
	}
	n, err := io.CopyBuffer(io.MultiWriter(dst, bar), newIdleReader(body, cancel), make([]byte, 1<<20))
	if err != nil {
		return n > 0, fmt.Errorf("after %d bytes: %w", off+n, err)
	}
	if m.size >= 0 && off+n != m.size {
		return n > 0, fmt.Errorf("body ended after %d of %d bytes", off+n, m.size)
	}
	return n > 0, nil
}

// rangeStart parses the first byte position of "bytes start-end/total".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// countingHash is a sha256 over a prefix of the file of known length, so
// that a resumed download is hashed while it streams; after a failed
// attempt it rehashes the prefix from disk if the two disagree.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *countingHash) catchUp(f *os.File, n int64) error {
	if c.n == n {
		return nil
	}
	c.h.Reset()
	c.n = 0
	if _, err := io.Copy(c, io.NewSectionReader(f, 0, n)); err != nil {
		return fmt.Errorf("hash partial download: %w", err)
	}
	return nil
}

// idleReader cancels the request when a Read blocks longer than
// idleTimeout, so a stalled connection becomes a retryable error instead of
// a hang.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
}

func newIdleReader(r io.Reader, cancel context.CancelFunc) *idleReader {
	t := time.AfterFunc(idleTimeout, cancel)
	t.Stop()
	return &idleReader{r: r, timer: t}
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(idleTimeout)
	n, err := r.r.Read(p)
	if !r.timer.Stop() {
		return n, fmt.Errorf("no data for %s: %w", idleTimeout, err)
	}
	return n, err
}

// link points snapshots/<commit>/<file> at ../../blobs/<etag> with a
// relative symlink, as huggingface_hub does.
func link(repoDir, commit, file, etag string) error {
	dst := filepath.Join(repoDir, "snapshots", commit, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	target, err := filepath.Rel(filepath.Dir(dst), filepath.Join(repoDir, "blobs", etag))
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == target {
		return nil
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, dst); err != nil {
		return fmt.Errorf("link %s: %w", dst, err)
	}
	return nil
}

// writeRef records that revision resolved to commit.
func writeRef(repoDir, revision, commit string) error {
	p := filepath.Join(repoDir, "refs", filepath.FromSlash(revision))
	if b, err := os.ReadFile(p); err == nil && string(b) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(commit), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// markMissing records, like huggingface_hub, that the hub has no such file
// at this commit.
func markMissing(repoDir, commit, file string) error {
	p := filepath.Join(repoDir, ".no_exist", commit, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o644)
}

// Package hub fetches a checkpoint from the Hugging Face hub into the cache
// layout that huggingface_hub uses, so a Python user's cache is reused and
// what we download serves Python too:
//
//	<hub cache>/models--org--name/
//	    blobs/<etag>               file contents, named by ETag (the sha256 for LFS files)
//	    refs/<revision>            the commit a branch or tag resolved to
//	    snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag>
//	    .no_exist/<commit>/<file>  marker: the hub had no such file at that commit
//
// Only what serving needs is fetched: config.json, the tokenizer and
// sentence-transformers files when present, and the safetensors weights
// (one file, or the index plus every shard it names). Pickled .bin
// checkpoints are never downloaded.
//
// Environment, as in huggingface_hub: HF_HOME (default
// $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface), HF_HUB_CACHE (default
// $HF_HOME/hub), HF_ENDPOINT, HF_TOKEN (else the token file written by
// `huggingface-cli login`) and HF_HUB_OFFLINE. Options fields that are set take precedence.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DefaultEndpoint is the hub used when neither Options.Endpoint nor
// HF_ENDPOINT is set.
const DefaultEndpoint = "https://huggingface.co"

// Options configures Resolve. Zero values fall back to the environment.
type Options struct {
	CacheDir string    // hub cache directory; default HF_HUB_CACHE, else $HF_HOME/hub
	Endpoint string    // default HF_ENDPOINT, else DefaultEndpoint
	Token    string    // default HF_TOKEN, else the huggingface-cli token file
	Offline  bool      // use the cache only; also set by HF_HUB_OFFLINE=1
	Progress io.Writer // download progress (plain \r updates); nil = silent
}

// Ref names a model repository on the hub at a revision (branch, tag or
// commit sha).
type Ref struct {
	ID       string // "org/name"
	Revision string // "main" unless given
}

func (r Ref) String() string { return r.ID + "@" + r.Revision }

// Files fetched when the repository has them; a 404 skips them.
var optionalFiles = []string{
	"tokenizer.json",
	"tokenizer_config.json",
	"config_sentence_transformers.json",
	"modules.json",
}

const (
	configFile = "config.json"
	weightFile = "model.safetensors"
	indexFile  = "model.safetensors.index.json"
)

// IsLocal reports whether spec names an existing local directory, which
// Resolve returns unchanged.
func IsLocal(spec string) bool {
	fi, err := os.Stat(spec)
	return err == nil && fi.IsDir()
}

// Resolve returns a directory holding the checkpoint named by spec: spec
// itself if it is an existing directory, otherwise the snapshot directory of
// the hub repository "org/name[@revision]" in the cache, downloading what is
// missing unless offline.
func Resolve(ctx context.Context, spec string, opts Options) (string, error) {
	if fi, err := os.Stat(spec); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("model %q is a file; want a checkpoint directory or a hub repo id org/name[@revision]", spec)
		}
		return spec, nil
	}
	ref, err := ParseSpec(spec)
	if err != nil {
		return "", err
	}
	c := newClient(opts)
	repoDir := filepath.Join(c.cacheDir, repoFolder(ref.ID))

	if c.offline {
		dir, err := cachedSnapshot(repoDir, ref, false)
		if err != nil {
			return "", fmt.Errorf("offline mode (HF_HUB_OFFLINE or Options.Offline) and %s is not in the cache %s: %w; run once with network access or unset HF_HUB_OFFLINE", ref, c.cacheDir, err)
		}
		return dir, nil
	}
	// A commit never changes: when its snapshot is complete there is
	// nothing to ask the hub.
	if isCommit(ref.Revision) {
		if dir, err := cachedSnapshot(repoDir, ref, true); err == nil {
			return dir, nil
		}
	}
	dir, err := c.download(ctx, ref, repoDir)
	var down *unreachableError
	if errors.As(err, &down) {
		// Like huggingface_hub: with the hub unreachable, a complete
		// cached snapshot of the revision is still usable.
		if cached, cerr := cachedSnapshot(repoDir, ref, false); cerr == nil {
			slog.Warn("hub unreachable; using cached snapshot", "repo", ref.String(), "dir", cached, "err", err)
			return cached, nil
		}
	}
	return dir, err
}

var (
	repoNamePart = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)
	commitSHA    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256Hex    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseSpec parses "org/name[@revision]" and validates it with the rules of
// the hub: two parts of letters, digits, '_', '-' and '.', neither starting
// nor ending with '-' or '.', no "--" or "..", at most 96 characters.
func ParseSpec(spec string) (Ref, error) {
	id, rev, hasRev := strings.Cut(spec, "@")
	if !hasRev {
		rev = "main"
	}
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("model %q is neither an existing directory nor a hub repo id org/name[@revision]: %s", spec, why)
	}
	org, name, ok := strings.Cut(id, "/")
	switch {
	case id == "":
		return bad("empty repo id")
	case !ok || strings.Contains(name, "/"):
		return bad("the repo id must have exactly one '/' (org/name)")
	case len(id) > 96:
		return bad("the repo id is longer than 96 characters")
	case !repoNamePart.MatchString(org) || !repoNamePart.MatchString(name):
		return bad("the repo id may hold only letters, digits, '_', '-' and '.', and must not start or end with '-' or '.'")
	case strings.Contains(id, "--") || strings.Contains(id, ".."):
		return bad("the repo id must not contain \"--\" or \"..\"")
	}
	if err := validRevision(rev); err != nil {
		return bad(err.Error())
	}
	return Ref{ID: id, Revision: rev}, nil
}

// validRevision rejects revisions that could not be a git ref; they also
// name a file under refs/ in the cache, so nothing may escape it.
func validRevision(rev string) error {
	switch {
	case rev == "":
		return errors.New("empty revision after '@'")
	case len(rev) > 255:
		return errors.New("revision longer than 255 characters")
	case strings.HasPrefix(rev, "/") || strings.HasSuffix(rev, "/") || strings.Contains(rev, "..") || strings.Contains(rev, "//"):
		return fmt.Errorf("revision %q is not a valid git ref", rev)
	}
	for _, r := range rev {
		if r <= ' ' || r == 0x7f || r == '\\' || r == '@' {
			return fmt.Errorf("revision %q holds the forbidden character %q", rev, r)
		}
	}
	return nil
}

func isCommit(rev string) bool { return commitSHA.MatchString(rev) }

// repoFolder is huggingface_hub's folder name for a model repo.
func repoFolder(id string) string { return "models--" + strings.ReplaceAll(id, "/", "--") }

// CacheDir returns the hub cache directory Resolve would use with opts.
func CacheDir(opts Options) string {
	if opts.CacheDir != "" {
		return opts.CacheDir
	}
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return expandHome(d)
	}
	if d := os.Getenv("HUGGINGFACE_HUB_CACHE"); d != "" { // older name, still honoured by Python
		return expandHome(d)
	}
	return filepath.Join(hfHome(), "hub")
}

func hfHome() string {
	if d := os.Getenv("HF_HOME"); d != "" {
		return expandHome(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d), "huggingface")
	}
	return filepath.Join(expandHome("~/.cache"), "huggingface")
}

func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}

func token(opts Options) string {
	if opts.Token != "" {
		return opts.Token
	}
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(k)); t != "" {
			return t
		}
	}
	file := os.Getenv("HF_TOKEN_PATH")
	if file == "" {
		file = filepath.Join(hfHome(), "token")
	}
	b, err := os.ReadFile(expandHome(file))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func envTrue(k string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(k))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// cachedSnapshot finds the snapshot of ref in the cache and checks that it
// holds config.json and complete safetensors weights. With strict, every
// optional file must also be present or recorded as absent in .no_exist, so
// that the snapshot is exactly what a download would produce.
func cachedSnapshot(repoDir string, ref Ref, strict bool) (string, error) {
	commit := ref.Revision
	if !isCommit(commit) {
		b, err := os.ReadFile(filepath.Join(repoDir, "refs", filepath.FromSlash(ref.Revision)))
		if err != nil {
			return "", fmt.Errorf("no cached ref for revision %q (%s)", ref.Revision, filepath.Join(repoDir, "refs", ref.Revision))
		}
		commit = strings.TrimSpace(string(b))
		if !isCommit(commit) {
			return "", fmt.Errorf("cached ref %s holds %q, not a commit sha", filepath.Join(repoDir, "refs", ref.Revision), commit)
		}
	}
	snap := filepath.Join(repoDir, "snapshots", commit)
	if _, err := os.Stat(snap); err != nil {
		return "", fmt.Errorf("no snapshot directory %s", snap)
	}
	missing := missingFiles(snap)
	if strict {
		for _, f := range optionalFiles {
			if !exists(filepath.Join(snap, f)) && !exists(filepath.Join(repoDir, ".no_exist", commit, f)) {
				missing = append(missing, f)
			}
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("snapshot %s is missing %s", snap, strings.Join(missing, ", "))
	}
	return snap, nil
}

// missingFiles lists what a snapshot lacks to be loadable: config.json and
// the safetensors weights.
func missingFiles(snap string) []string {
	var missing []string
	if !exists(filepath.Join(snap, configFile)) {
		missing = append(missing, configFile)
	}
	if exists(filepath.Join(snap, weightFile)) {
		return missing
	}
	if !exists(filepath.Join(snap, indexFile)) {
		return append(missing, weightFile+" (or "+indexFile+")")
	}
	shards, err := readShards(filepath.Join(snap, indexFile))
	if err != nil {
		return append(missing, fmt.Sprintf("a readable %s (%v)", indexFile, err))
	}
	for _, s := range shards {
		if !exists(filepath.Join(snap, filepath.FromSlash(s))) {
			missing = append(missing, s)
		}
	}
	return missing
}

// exists follows symlinks: a link to a missing blob does not count.
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// maxIndexSize bounds what we read of a safetensors index; real ones are a
// few hundred KiB.
const maxIndexSize = 64 << 20

// readShards returns the sorted distinct shard files named by a
// model.safetensors.index.json.
func readShards(indexPath string) ([]string, error) {
	f, err := os.Open(indexPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", indexPath, err)
	}
	if len(b) > maxIndexSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", indexPath, maxIndexSize)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("parse %s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s has no weight_map entries", indexPath)
	}
	var shards []string
	for tensor, s := range idx.WeightMap {
		if s == "" || path.IsAbs(s) || path.Clean(s) != s || strings.HasPrefix(s, "../") || strings.Contains(s, `\`) || !strings.HasSuffix(s, ".safetensors") {
			return nil, fmt.Errorf("%s: tensor %q maps to %q, not a relative .safetensors path inside the repo", indexPath, tensor, s)
		}
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	slices.Sort(shards)
	return shards, nil
}

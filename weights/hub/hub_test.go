package hub

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEnv isolates a test from the user's Hugging Face settings and makes
// retries fast. It returns the hub cache directory ($HF_HOME/hub).
func testEnv(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HF_HOME", home)
	oldBase, oldRetries := retryBase, maxRetries
	retryBase, maxRetries = time.Millisecond, 3
	t.Cleanup(func() { retryBase, maxRetries = oldBase, oldRetries })
	return filepath.Join(home, "hub")
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// modelFiles is a repo with a single safetensors file, two of the four
// optional files, and a .bin that must never be fetched.
func modelFiles() map[string][]byte {
	return map[string][]byte{
		"config.json":       []byte(`{"model_type":"llama"}`),
		"tokenizer.json":    []byte(`{"version":"1.0"}`),
		"modules.json":      []byte(`[]`),
		"model.safetensors": randomBytes(300_000, 1),
		"pytorch_model.bin": randomBytes(1000, 2),
		"README.md":         []byte("# model"),
	}
}

func etagOf(name string, data []byte) string {
	if strings.HasSuffix(name, ".safetensors") {
		return sha256hex(data)
	}
	return gitSHA1(data)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSnapshot verifies the huggingface_hub layout on disk for files.
func checkSnapshot(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink (mode %v)", name, fi.Mode())
			continue
		}
		target, _ := os.Readlink(p)
		if want := "../../blobs/" + etagOf(name, data); target != want {
			t.Errorf("%s -> %q, want %q", name, target, want)
		}
		if got := mustRead(t, p); !bytes.Equal(got, data) {
			t.Errorf("%s: content differs (%d bytes, want %d)", name, len(got), len(data))
		}
	}
}

func TestResolveDownloadsIntoCacheLayout(t *testing.T) {
	cache := testEnv(t)
	h := newFakeHub(t)
	files := modelFiles()
	repo := h.addRepo("acme/embed", files)

	dir, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--acme--embed")
	if want := filepath.Join(repoDir, "snapshots", repo.commit); dir != want {
		t.Fatalf("dir = %s, want %s", dir, want)
	}
	if ref := string(mustRead(t, filepath.Join(repoDir, "refs", "main"))); ref != repo.commit {
		t.Errorf("refs/main = %q, want %q", ref, repo.commit)
	}
	want := map[string][]byte{}
	for _, f := range []string{"config.json", "tokenizer.json", "modules.json", "model.safetensors"} {
		want[f] = files[f]
	}
	checkSnapshot(t, dir, want)
	for _, f := range []string{"tokenizer_config.json", "config_sentence_transformers.json", "pytorch_model.bin", "README.md"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s is in the snapshot; the repo has no such file or we must not fetch it", f)
		}
	}
	for _, f := range []string{"tokenizer_config.json", "config_sentence_transformers.json"} {
		if _, err := os.Stat(filepath.Join(repoDir, ".no_exist", repo.commit, f)); err != nil {
			t.Errorf("no .no_exist marker for %s: %v", f, err)
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(repoDir, "blobs"))
	if len(blobs) != 4 {
		t.Errorf("%d blobs, want 4", len(blobs))
	}
	for _, b := range blobs {
		if strings.HasSuffix(b.Name(), ".incomplete") {
			t.Errorf("leftover %s", b.Name())
		}
	}
	if got := h.requests(".bin"); len(got) != 0 {
		t.Errorf("requested .bin files: %v", got)
	}
	if len(h.requests("CDN GET")) != 1 {
		t.Errorf("CDN GETs: %v, want one", h.requests("CDN GET"))
	}
	for _, a := range h.hubAuth {
		if a != "Bearer tok" {
			t.Errorf("hub saw Authorization %q, want the token", a)
		}
	}
	for _, a := range h.cdnAuth {
		if a != "" {
			t.Errorf("the token was forwarded to the CDN: %q", a)
		}
	}
}

func TestResolveCacheHitMakesNoGET(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	repo := h.addRepo("acme/embed", modelFiles())
	opts := Options{Endpoint: h.hub.URL}
	first, err := Resolve(context.Background(), "acme/embed", opts)
	if err != nil {
		t.Fatal(err)
	}

	h.resetLog()
	second, err := Resolve(context.Background(), "acme/embed", opts)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second Resolve = %s, want %s", second, first)
	}
	if gets := h.requests(" GET "); len(gets) != 0 {
		t.Errorf("second Resolve made GETs: %v", gets)
	}
	if len(h.requests("HUB HEAD")) == 0 {
		t.Error("a branch must still be checked with HEAD")
	}

	// A commit cannot change: a complete snapshot needs no request at all.
	h.resetLog()
	pinned, err := Resolve(context.Background(), "acme/embed@"+repo.commit, opts)
	if err != nil {
		t.Fatal(err)
	}
	if pinned != first {
		t.Errorf("Resolve at the commit = %s, want %s", pinned, first)
	}
	if len(h.requests("")) != 0 {
		t.Errorf("Resolve at a cached commit made requests: %v", h.requests(""))
	}
}

func TestResolveShardedSafetensors(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	files := map[string][]byte{
		"config.json": []byte(`{}`),
		"model.safetensors.index.json": []byte(`{"metadata":{"total_size":3},"weight_map":{
			"a.weight":"model-00001-of-00002.safetensors",
			"b.weight":"model-00002-of-00002.safetensors",
			"c.weight":"model-00001-of-00002.safetensors"}}`),
		"model-00001-of-00002.safetensors": randomBytes(5000, 3),
		"model-00002-of-00002.safetensors": randomBytes(7000, 4),
		"model-00003-of-00003.safetensors": randomBytes(10, 5), // not in the index: not fetched
	}
	h.addRepo("acme/big", files)
	dir, err := Resolve(context.Background(), "acme/big", Options{Endpoint: h.hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	delete(files, "model-00003-of-00003.safetensors")
	checkSnapshot(t, dir, files)
	if got := h.requests("00003"); len(got) != 0 {
		t.Errorf("fetched a shard the index does not name: %v", got)
	}
	if got := len(h.requests("CDN GET")); got != 2 {
		t.Errorf("%d CDN GETs, want 2 (one per shard)", got)
	}
}

func TestResolveErrors(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/embed", modelFiles())
	h.addRepo("acme/gated", modelFiles()).gated = true
	h.addRepo("acme/pickled", map[string][]byte{"config.json": []byte(`{}`), "pytorch_model.bin": randomBytes(100, 6)})
	h.addRepo("acme/noconfig", map[string][]byte{"model.safetensors": randomBytes(100, 7)})
	h.addRepo("acme/badindex", map[string][]byte{
		"config.json":                  []byte(`{}`),
		"model.safetensors.index.json": []byte(`{"weight_map":{"a":"model-00001-of-00002.safetensors"}}`),
	})
	h.addRepo("acme/evilindex", map[string][]byte{
		"config.json":                  []byte(`{}`),
		"model.safetensors.index.json": []byte(`{"weight_map":{"a":"../../../etc/x.safetensors"}}`),
	})

	tests := []struct {
		name, spec, token string
		want              []string // substrings of the error; none = success
	}{
		{"missing repo", "acme/nope", "", []string{"repository not found", "acme/nope"}},
		{"gated without token", "acme/gated", "", []string{"acme/gated", "gated", "set HF_TOKEN"}},
		{"gated with a rejected token", "acme/gated", "bad-token", []string{"gated", "token in HF_TOKEN"}},
		{"gated with a good token", "acme/gated", "good-token", nil},
		{"unknown revision", "acme/embed@v9", "", []string{`revision "v9" not found`}},
		{"only .bin weights", "acme/pickled", "", []string{"no safetensors", ".bin"}},
		{"no config.json", "acme/noconfig", "", []string{"config.json"}},
		{"index names a missing shard", "acme/badindex", "", []string{"model-00001-of-00002.safetensors"}},
		{"index escapes the repo", "acme/evilindex", "", []string{"../../../etc/x.safetensors", "not a relative"}},
		{"malformed spec", "acme/embed/extra", "", []string{"acme/embed/extra", "org/name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), tt.spec, Options{Endpoint: h.hub.URL, Token: tt.token})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if got := h.requests(".bin"); len(got) != 0 {
		t.Errorf("requested .bin files: %v", got)
	}
}

func TestResolveEnvironment(t *testing.T) {
	cache := testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/gated", modelFiles()).gated = true
	t.Setenv("HF_ENDPOINT", h.hub.URL)

	t.Run("HF_TOKEN", func(t *testing.T) {
		t.Setenv("HF_TOKEN", "good-token")
		if _, err := Resolve(context.Background(), "acme/gated", Options{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("token file from huggingface-cli login", func(t *testing.T) {
		os.RemoveAll(cache)
		tokenFile := filepath.Join(filepath.Dir(cache), "token")
		if err := os.WriteFile(tokenFile, []byte("good-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tokenFile)
		dir, err := Resolve(context.Background(), "acme/gated", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dir, cache) {
			t.Errorf("dir %s is not under $HF_HOME/hub %s", dir, cache)
		}
	})
	t.Run("HF_HUB_CACHE", func(t *testing.T) {
		other := t.TempDir()
		t.Setenv("HF_HUB_CACHE", other)
		dir, err := Resolve(context.Background(), "acme/gated", Options{Token: "good-token"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dir, other) {
			t.Errorf("dir %s is not under HF_HUB_CACHE %s", dir, other)
		}
	})
}

func TestCacheDir(t *testing.T) {
	testEnv(t)
	home, _ := os.UserHomeDir()
	tests := []struct {
		name string
		env  map[string]string
		opts Options
		want string
	}{
		{"option wins", map[string]string{"HF_HUB_CACHE": "/a"}, Options{CacheDir: "/opt"}, "/opt"},
		{"HF_HUB_CACHE", map[string]string{"HF_HUB_CACHE": "/a", "HF_HOME": "/h"}, Options{}, "/a"},
		{"HF_HOME", map[string]string{"HF_HOME": "/h"}, Options{}, "/h/hub"},
		{"XDG_CACHE_HOME", map[string]string{"HF_HOME": "", "XDG_CACHE_HOME": "/x"}, Options{}, "/x/huggingface/hub"},
		{"default", map[string]string{"HF_HOME": ""}, Options{}, filepath.Join(home, ".cache/huggingface/hub")},
		{"tilde", map[string]string{"HF_HOME": "~/hf"}, Options{}, filepath.Join(home, "hf/hub")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if got := CacheDir(tt.opts); got != tt.want {
				t.Errorf("CacheDir = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseSpec(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	good := []struct {
		spec string
		want Ref
	}{
		{"org/name", Ref{"org/name", "main"}},
		{"nvidia/llama-nemotron-embed-1b-v2", Ref{"nvidia/llama-nemotron-embed-1b-v2", "main"}},
		{"Org_1/name.v2@v1.0", Ref{"Org_1/name.v2", "v1.0"}},
		{"org/name@refs/pr/1", Ref{"org/name", "refs/pr/1"}},
		{"org/name@" + sha, Ref{"org/name", sha}},
	}
	for _, tt := range good {
		got, err := ParseSpec(tt.spec)
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
		}
	}
	bad := []string{
		"", "name", "org/name/extra", "/name", "org/", "org//name", "-org/name", "org/name.",
		"org--x/name", "org/na..me", "org/na me", "org/name@", "org/name@../x", "org/name@a b",
		"org/name@/x", "org/name@a@b", "org/" + strings.Repeat("n", 95), "./local/dir", "~/models/x",
	}
	for _, spec := range bad {
		_, err := ParseSpec(spec)
		if err == nil {
			t.Errorf("ParseSpec(%q) accepted a malformed spec", spec)
			continue
		}
		if !strings.Contains(err.Error(), "org/name[@revision]") {
			t.Errorf("ParseSpec(%q): error %q does not say what is expected", spec, err)
		}
	}
}

func TestResolveLocalDirectory(t *testing.T) {
	testEnv(t)
	dir := t.TempDir()
	// The endpoint is unreachable: a local directory must not touch it.
	opts := Options{Endpoint: "http://127.0.0.1:1"}
	got, err := Resolve(context.Background(), dir, opts)
	if err != nil || got != dir {
		t.Errorf("Resolve(%s) = %s, %v; want it unchanged", dir, got, err)
	}
	if !IsLocal(dir) || IsLocal(filepath.Join(dir, "missing")) {
		t.Error("IsLocal is wrong")
	}
	file := filepath.Join(dir, "config.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	if _, err := Resolve(context.Background(), file, opts); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("Resolve(file) error = %v, want 'is a file'", err)
	}
	if _, err := Resolve(context.Background(), filepath.Join(dir, "missing"), opts); err == nil || !strings.Contains(err.Error(), "neither an existing directory") {
		t.Errorf("Resolve(missing dir) error = %v", err)
	}
}

func TestResolveResumesDownloads(t *testing.T) {
	files := modelFiles()
	data := files["model.safetensors"]
	sum := sha256hex(data)
	tests := []struct {
		name        string
		dropAfter   int    // CDN drops the first connection after this many bytes
		ignoreRange bool   // CDN answers 200 to Range
		partial     []byte // blobs/<sha>.incomplete left by an earlier run
		wantRanges  []string
	}{
		{"connection drop, resumed with 206", 100_000, false, nil, []string{"range=", "range=bytes=100000-"}},
		{"connection drop, server ignores Range", 100_000, true, nil, []string{"range=", "range=bytes=100000-"}},
		{"partial file from an earlier run", 0, false, data[:123_457], []string{"range=bytes=123457-"}},
		{"partial file longer than the blob", 0, false, append(bytes.Clone(data), 1, 2, 3), []string{"range="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := testEnv(t)
			h := newFakeHub(t)
			h.addRepo("acme/embed", files)
			h.ignoreRange = tt.ignoreRange
			if tt.dropAfter > 0 {
				h.dropAfter[sum] = tt.dropAfter
			}
			blob := filepath.Join(cache, "models--acme--embed", "blobs", sum)
			if tt.partial != nil {
				os.MkdirAll(filepath.Dir(blob), 0o755)
				if err := os.WriteFile(blob+".incomplete", tt.partial, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dir, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL})
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, dir, map[string][]byte{"model.safetensors": data})
			gets := h.requests("CDN GET")
			if len(gets) != len(tt.wantRanges) {
				t.Fatalf("CDN GETs %v, want ranges %v", gets, tt.wantRanges)
			}
			for i, g := range gets {
				if !strings.HasSuffix(g, tt.wantRanges[i]) {
					t.Errorf("GET %d = %q, want %q", i, g, tt.wantRanges[i])
				}
			}
			if _, err := os.Stat(blob + ".incomplete"); err == nil {
				t.Error(".incomplete left behind")
			}
		})
	}
}

func TestResolveSHA256Mismatch(t *testing.T) {
	cache := testEnv(t)
	h := newFakeHub(t)
	files := modelFiles()
	repo := h.addRepo("acme/embed", files)
	repo.corrupt["model.safetensors"] = true
	opts := Options{Endpoint: h.hub.URL}

	_, err := Resolve(context.Background(), "acme/embed", opts)
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("error = %v, want a sha256 mismatch on model.safetensors", err)
	}
	blob := filepath.Join(cache, "models--acme--embed", "blobs", sha256hex(files["model.safetensors"]))
	for _, p := range []string{blob, blob + ".incomplete", filepath.Join(cache, "models--acme--embed", "snapshots", repo.commit, "model.safetensors")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after a corrupt download", p)
		}
	}

	// Once the CDN serves the right bytes, the next run succeeds.
	repo.corrupt["model.safetensors"] = false
	dir, err := Resolve(context.Background(), "acme/embed", opts)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, dir, map[string][]byte{"model.safetensors": files["model.safetensors"]})
}

func TestResolveOffline(t *testing.T) {
	cache := testEnv(t)
	h := newFakeHub(t)
	files := modelFiles()
	repo := h.addRepo("acme/embed", files)
	online, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	h.resetLog()

	tests := []struct {
		name    string
		spec    string
		opts    Options
		env     bool // set HF_HUB_OFFLINE=1 instead of Options.Offline
		prepare func()
		want    []string // error substrings; none = success returning the online dir
	}{
		{"cached branch", "acme/embed", Options{Offline: true}, false, nil, nil},
		{"cached branch via HF_HUB_OFFLINE", "acme/embed", Options{}, true, nil, nil},
		{"cached commit", "acme/embed@" + repo.commit, Options{Offline: true}, false, nil, nil},
		{"repo never downloaded", "acme/other", Options{Offline: true}, false, nil, []string{"offline", "acme/other@main", "refs", "HF_HUB_OFFLINE"}},
		{"revision never downloaded", "acme/embed@v2", Options{}, true, nil, []string{"offline", `revision "v2"`}},
		{"blob deleted", "acme/embed", Options{Offline: true}, false, func() {
			os.Remove(filepath.Join(cache, "models--acme--embed", "blobs", sha256hex(files["model.safetensors"])))
		}, []string{"offline", "missing model.safetensors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env {
				t.Setenv("HF_HUB_OFFLINE", "1")
			}
			if tt.prepare != nil {
				tt.prepare()
			}
			tt.opts.Endpoint = h.hub.URL
			dir, err := Resolve(context.Background(), tt.spec, tt.opts)
			if len(tt.want) == 0 {
				if err != nil || dir != online {
					t.Errorf("Resolve = %s, %v; want %s", dir, err, online)
				}
			} else {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
			}
		})
	}
	if got := h.requests(""); len(got) != 0 {
		t.Errorf("offline mode made requests: %v", got)
	}
}

func TestResolveUnreachableHub(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/embed", modelFiles())
	online, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	dead := httptest.NewServer(nil)
	dead.Close()

	// A complete cached snapshot of the revision serves when the hub is down.
	dir, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: dead.URL})
	if err != nil || dir != online {
		t.Errorf("Resolve with the hub down = %s, %v; want the cached %s", dir, err, online)
	}
	_, err = Resolve(context.Background(), "acme/other", Options{Endpoint: dead.URL})
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("error = %v, want 'unreachable'", err)
	}
}

func TestResolveRetriesServerErrors(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/embed", modelFiles())
	opts := Options{Endpoint: h.hub.URL}

	h.failHeads = 2
	if _, err := Resolve(context.Background(), "acme/embed", opts); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}

	// Nothing cached for this one, so no fallback to the cache hides the error.
	h.addRepo("acme/fresh", modelFiles())
	h.resetLog()
	h.failHeads = 1000
	_, err := Resolve(context.Background(), "acme/fresh", opts)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error = %v, want the 503 after bounded retries", err)
	}
	if got, want := len(h.requests("HEAD")), maxRetries+1; got != want {
		t.Errorf("%d HEADs, want %d (bounded retries)", got, want)
	}

	retryBase = time.Hour // only the context can end the wait
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Resolve(ctx, "acme/other", opts)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the context deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled Resolve took %s", d)
	}
}

func TestResolveProgress(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/embed", modelFiles())
	var out bytes.Buffer
	if _, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL, Progress: &out}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, w := range []string{"\rmodel.safetensors", "293.0 KiB / 293.0 KiB", "\rconfig.json  22 B / 22 B"} {
		if !strings.Contains(s, w) {
			t.Errorf("progress output %q lacks %q", s, w)
		}
	}
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("progress output does not end its line: %q", s)
	}
}

// A GET on the hub that redirects to the CDN (another port on the same
// host, which Go's own redirect policy would treat as the same site) must
// not carry the token there.
func TestRedirectDropsTokenOnOtherHost(t *testing.T) {
	testEnv(t)
	h := newFakeHub(t)
	h.addRepo("acme/embed", modelFiles())
	c := newClient(Options{Endpoint: h.hub.URL, Token: "tok"})
	u, err := c.resolveURL(Ref{"acme/embed", "main"}, "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	req, err := c.newRequest(context.Background(), "GET", u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(h.requests("CDN GET")) != 1 {
		t.Fatalf("status %d, CDN requests %v: the redirect was not followed", resp.StatusCode, h.requests("CDN GET"))
	}
	if h.hubAuth[0] != "Bearer tok" || h.cdnAuth[0] != "" {
		t.Errorf("hub saw %q, CDN saw %q; want the token on the hub only", h.hubAuth[0], h.cdnAuth[0])
	}
}

// A connection that stops delivering bytes without closing is abandoned
// after idleTimeout and the download resumes on a new one.
func TestResolveStalledConnectionResumes(t *testing.T) {
	testEnv(t)
	old := idleTimeout
	idleTimeout = 100 * time.Millisecond
	t.Cleanup(func() { idleTimeout = old })
	h := newFakeHub(t)
	files := modelFiles()
	h.addRepo("acme/embed", files)
	h.stallAfter[sha256hex(files["model.safetensors"])] = 50_000

	dir, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, dir, map[string][]byte{"model.safetensors": files["model.safetensors"]})
	gets := h.requests("CDN GET")
	// The resume point is 50000 unless a loaded machine paused a Read
	// mid-transfer for longer than the shortened idleTimeout.
	if len(gets) < 2 || !strings.Contains(gets[len(gets)-1], "range=bytes=") {
		t.Errorf("CDN GETs %v, want a stalled one then a resume with Range", gets)
	}
}

// A renamed repo answers with a relative redirect to its new name, which
// HEAD follows (the cache keeps the name the user asked for, as Python does).
func TestResolveFollowsRenamedRepo(t *testing.T) {
	cache := testEnv(t)
	h := newFakeHub(t)
	files := modelFiles()
	h.addRepo("acme/embed-v2", files)
	h.renamed = map[string]string{"acme/embed": "acme/embed-v2"}
	dir, err := Resolve(context.Background(), "acme/embed", Options{Endpoint: h.hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(cache, "models--acme--embed", "snapshots")) {
		t.Errorf("dir = %s, want it under models--acme--embed", dir)
	}
	checkSnapshot(t, dir, map[string][]byte{"config.json": files["config.json"], "model.safetensors": files["model.safetensors"]})
	if len(h.requests("HEAD /acme/embed-v2/")) == 0 {
		t.Error("the redirect to the new name was not followed")
	}
}

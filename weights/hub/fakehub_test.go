package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeHub behaves like huggingface.co for the resolve endpoint: small files
// are answered directly with their git blob sha1 as ETag, LFS files with a
// 302 to a second server (the CDN) and X-Linked-Etag/X-Linked-Size.
type fakeHub struct {
	hub, cdn *httptest.Server

	mu          sync.Mutex
	repos       map[string]*fakeRepo
	blobs       map[string][]byte // CDN contents by sha256
	log         []string          // "HUB HEAD /path", "CDN GET /blobs/x range=..."
	cdnAuth     []string          // Authorization headers the CDN saw
	hubAuth     []string          // Authorization headers the hub saw
	dropAfter   map[string]int    // sha256 -> drop the connection after N body bytes, once
	stallAfter  map[string]int    // sha256 -> send N body bytes then nothing until the client hangs up, once
	ignoreRange bool              // the CDN answers 200 with the whole file to Range requests
	failHeads   int               // answer this many HEADs with 503 first
	renamed     map[string]string // old repo id -> new one, answered with a relative 307
}

type fakeRepo struct {
	commit  string
	gated   bool // needs "Bearer good-token"
	files   map[string]fakeFile
	corrupt map[string]bool // serve bytes that do not match the announced sha256
}

type fakeFile struct {
	data []byte
	lfs  bool
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{repos: map[string]*fakeRepo{}, blobs: map[string][]byte{}, dropAfter: map[string]int{}, stallAfter: map[string]int{}}
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.cdn.Close)
	return h
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gitSHA1(b []byte) string {
	s := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(b))), b...))
	return hex.EncodeToString(s[:])
}

// addRepo registers a repo; files whose name ends in .safetensors are LFS.
func (h *fakeHub) addRepo(id string, files map[string][]byte) *fakeRepo {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := &fakeRepo{commit: gitSHA1([]byte(id)), files: map[string]fakeFile{}, corrupt: map[string]bool{}}
	for name, data := range files {
		lfs := strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".bin")
		r.files[name] = fakeFile{data: data, lfs: lfs}
		if lfs {
			h.blobs[sha256hex(data)] = data
		}
	}
	h.repos[id] = r
	return r
}

func (h *fakeHub) record(s string) {
	h.mu.Lock()
	h.log = append(h.log, s)
	h.mu.Unlock()
}

// requests returns the logged requests containing substr.
func (h *fakeHub) requests(substr string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range h.log {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (h *fakeHub) resetLog() {
	h.mu.Lock()
	h.log, h.cdnAuth, h.hubAuth = nil, nil, nil
	h.mu.Unlock()
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	w.WriteHeader(status)
}

// serveHub answers /{org}/{name}/resolve/{rev}/{file...}.
func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.record("HUB " + r.Method + " " + r.URL.Path)
	h.mu.Lock()
	h.hubAuth = append(h.hubAuth, r.Header.Get("Authorization"))
	fail := h.failHeads > 0 && r.Method == http.MethodHead
	if fail {
		h.failHeads--
	}
	h.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	id, rev, file := parts[0]+"/"+parts[1], parts[3], parts[4]
	h.mu.Lock()
	repo, newID := h.repos[id], h.renamed[id]
	h.mu.Unlock()
	if newID != "" {
		w.Header().Set("Location", "/"+newID+"/resolve/"+rev+"/"+file)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	if repo == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url")
		return
	}
	if repo.gated && r.Header.Get("Authorization") != "Bearer good-token" {
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+id+" is restricted.")
		return
	}
	if rev != "main" && rev != repo.commit {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	f, ok := repo.files[file]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	w.Header().Set("X-Repo-Commit", repo.commit)
	if f.lfs {
		sum := sha256hex(f.data)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
		w.Header().Set("ETag", `"`+gitSHA1([]byte("pointer "+sum))+`"`)
		target := "/blobs/" + sum
		if repo.corrupt[file] {
			target += "?corrupt=1"
		}
		w.Header().Set("Location", h.cdn.URL+target)
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitSHA1(f.data)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	if r.Method == http.MethodGet {
		w.Write(f.data)
	}
}

// serveCDN answers /blobs/<sha256> with Range support, optionally dropping
// the connection part-way or serving corrupt bytes.
func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.record("CDN " + r.Method + " " + r.URL.Path + " range=" + r.Header.Get("Range"))
	sum := strings.TrimPrefix(r.URL.Path, "/blobs/")
	h.mu.Lock()
	h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
	data, ok := h.blobs[sum]
	drop := h.dropAfter[sum]
	delete(h.dropAfter, sum)
	stall := h.stallAfter[sum]
	delete(h.stallAfter, sum)
	ignoreRange := h.ignoreRange
	h.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("corrupt") != "" {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	status, start := http.StatusOK, 0
	if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil || n > len(data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		status, start = http.StatusPartialContent, n
	}
	body := data[start:]
	if stall > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body[:stall])
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the client gave up on us
		return
	}
	if drop > 0 {
		// Announce the whole body, send drop bytes, then cut the TCP
		// connection, as a network failure would.
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n", status, http.StatusText(status), len(body))
		if status == http.StatusPartialContent {
			fmt.Fprintf(buf, "Content-Range: bytes %d-%d/%d\r\n", start, len(data)-1, len(data))
		}
		buf.WriteString("\r\n")
		buf.Write(body[:drop])
		buf.Flush()
		conn.Close()
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if status == http.StatusPartialContent {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
	}
	w.WriteHeader(status)
	w.Write(body)
}

package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

type ctxKey int

const reqInfoKey ctxKey = 0

// reqInfo is what the outer middleware learns about a request from the
// inner layers: the route template (for metric labels) and the id.
type reqInfo struct {
	id    string
	route string
	attrs []slog.Attr // extra fields for the request's log line
}

func infoFrom(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// addLog adds fields to the request's single log line.
func addLog(ctx context.Context, attrs ...slog.Attr) {
	ri := infoFrom(ctx)
	ri.attrs = append(ri.attrs, attrs...)
}

// statusWriter records the status and size a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// observe gives every request an id (the client's X-Request-Id when sent,
// echoed back), recovers panics as 500, counts it in the metrics and logs
// one line for it.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		ri := &reqInfo{id: id, route: "unmatched"}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "id", id, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal_error", "", "internal_error", "internal server error")
				}
			}
			status := sw.status
			if status == 0 {
				// The handler wrote nothing: the client went away first.
				status = 499
			}
			d := time.Since(t0)
			code := strconv.Itoa(status)
			s.met.requests.Inc(ri.route, code)
			s.met.requestSeconds.Observe(d.Seconds(), ri.route)
			level := slog.LevelInfo
			if ri.route == "/v1/health/live" || ri.route == "/v1/health/ready" || ri.route == "/health" || ri.route == "/metrics" || ri.route == "/v1/metrics" {
				level = slog.LevelDebug // probes and scrapes would drown the log
			}
			attrs := append([]slog.Attr{
				slog.String("id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", status), slog.Duration("took", d), slog.Int("bytes", sw.bytes),
			}, ri.attrs...)
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), reqInfoKey, ri)))
	})
}

// routeLabel records the matched route template for the metrics.
func (s *Server) routeLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := mux.CurrentRoute(r); rt != nil {
			if tpl, err := rt.GetPathTemplate(); err == nil {
				infoFrom(r.Context()).route = tpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requireKey enforces the API key when one is configured. Without one the
// Authorization header is accepted and ignored, as the NIM does.
func (s *Server) requireKey(h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.APIKey == "" {
		return h
	}
	want := []byte(s.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		got, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			got, ok = strings.CutPrefix(auth, "bearer ")
		}
		// ConstantTimeCompare leaks only the length, which is not secret.
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="llamaembed"`)
			msg := "missing or invalid API key: send 'Authorization: Bearer <key>'"
			if r.URL.Path == "/embed" {
				writeDetail(w, http.StatusUnauthorized, msg)
				return
			}
			writeError(w, http.StatusUnauthorized, "authentication_error", "", "invalid_api_key", msg)
			return
		}
		h(w, r)
	}
}

func newRequestID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}

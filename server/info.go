package server

import (
	"net/http"
)

// handleLive is GET /v1/health/live: the process is up and listening.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "health.response", "message": "live", "live": true})
}

// handleReady is GET /v1/health/ready: 200 once the model is loaded and
// warmed, 503 while loading and while draining.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	switch st {
	case stateReady:
		writeJSON(w, http.StatusOK, map[string]any{"object": "health.response", "message": "ready", "ready": true})
	case stateDraining:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"object": "health.response", "message": "shutting down", "ready": false})
	case stateFailed:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"object": "health.response", "message": "model failed to load", "ready": false})
	default:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"object": "health.response", "message": "loading", "ready": false})
	}
}

// handleModels is GET /v1/models: the OpenAI list with the served name.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []any{map[string]any{
			"id":       s.cfg.ServedModelName,
			"object":   "model",
			"created":  s.started.Unix(),
			"owned_by": "system",
			"root":     s.cfg.ServedModelName,
		}},
	})
}

// handleMetadata is GET /v1/metadata, shaped like the NIM's. nv-ingest
// reads modelInfo[0].shortName and splits it on ':' into name and version.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	info := map[string]any{
		"shortName": s.cfg.ServedModelName + ":" + s.cfg.ModelVersion,
		"modelUrl":  "",
	}
	s.mu.Lock()
	if m := s.model; m != nil {
		info["embeddingDimension"] = m.hidden
		info["maxSequenceLength"] = s.cfg.MaxSeqLen
		info["devices"] = m.devices
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"version":             Version,
		"modelInfo":           []any{info},
		"assetInfo":           []string{s.cfg.ServedModelName},
		"licenseInfo":         s.license(),
		"repository_override": "",
	})
}

func (s *Server) license() map[string]string {
	name := s.cfg.LicenseName
	if name == "" {
		name = "see the model's license"
	}
	return map[string]string{"name": name, "content": s.cfg.LicenseText}
}

// handleVersion is GET /v1/version.
func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"release": Version, "api": "1.0.0"})
}

// handleLicense is GET /v1/license.
func (s *Server) handleLicense(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.license())
}

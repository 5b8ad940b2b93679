package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// The WAYWO embedding service is a FastAPI app: errors are {"detail": ...},
// body validation failures are 422 with pydantic-style details, and fields
// it does not know are ignored.

type validationIssue struct {
	Type string `json:"type"`
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
}

// parseWaywoRequest decodes {"documents": [str, ...]}.
func parseWaywoRequest(body []byte) ([]string, []validationIssue) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		msg := "JSON decode error"
		if err != nil {
			msg += ": " + jsonErr(err)
		}
		return nil, []validationIssue{{Type: "json_invalid", Loc: []any{"body"}, Msg: msg}}
	}
	raw, ok := fields["documents"]
	if !ok {
		return nil, []validationIssue{{Type: "missing", Loc: []any{"body", "documents"}, Msg: "Field required"}}
	}
	var items []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &items) != nil {
		return nil, []validationIssue{{Type: "list_type", Loc: []any{"body", "documents"}, Msg: "Input should be a valid list"}}
	}
	docs := make([]string, len(items))
	var issues []validationIssue
	for i, it := range items {
		if isNull(it) || json.Unmarshal(it, &docs[i]) != nil {
			issues = append(issues, validationIssue{Type: "string_type", Loc: []any{"body", "documents", i}, Msg: "Input should be a valid string"})
		}
	}
	return docs, issues
}

// handleWaywoEmbed is POST /embed: documents in, full-size document
// embeddings (with the model's document prompt) out.
func (s *Server) handleWaywoEmbed(w http.ResponseWriter, r *http.Request) {
	body, rerr := s.readBody(w, r)
	if rerr != nil {
		writeDetail(w, rerr.status, rerr.msg)
		return
	}
	docs, issues := parseWaywoRequest(body)
	if issues != nil {
		writeDetail(w, http.StatusUnprocessableEntity, issues)
		return
	}
	adm, err := s.admit()
	if err != nil {
		s.met.rejected.Inc(rejectReason(err))
		switch err {
		case errLoading:
			writeDetail(w, http.StatusServiceUnavailable, "Model not loaded")
		default:
			re := admissionError(err)
			w.Header().Set("Retry-After", "1")
			writeDetail(w, re.status, re.msg)
		}
		return
	}
	defer adm.release()
	if len(docs) == 0 {
		writeDetail(w, http.StatusBadRequest, "No documents provided")
		return
	}
	if len(docs) > s.cfg.MaxDocuments {
		writeDetail(w, http.StatusBadRequest, fmt.Sprintf("Too many documents: %d, the limit is %d", len(docs), s.cfg.MaxDocuments))
		return
	}
	// Documents longer than the limit are cut at the end, as
	// sentence-transformers does with max_seq_length.
	res, err := s.embed(r.Context(), adm.model, docs, adm.model.passage, TruncateEnd)
	if err != nil {
		var re *reqError
		switch {
		case errors.Is(err, errClientGone):
		case errors.As(err, &re):
			writeDetail(w, re.status, re.msg)
		default:
			s.log.Error("embedding failed", "err", err)
			writeDetail(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	res.timing.setHeaders(w)
	writeJSON(w, http.StatusOK, map[string]any{"embeddings": res.vecs})
}

// handleWaywoHealth is GET /health.
func (s *Server) handleWaywoHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	loaded := s.model != nil
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "model_loaded": loaded})
}

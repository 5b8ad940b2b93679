package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// embeddingsRequest is a validated POST /v1/embeddings body.
type embeddingsRequest struct {
	Model          string
	Input          []string
	InputType      string // "", "query" or "passage"
	EncodingFormat string // "float" or "base64"
	Truncate       Truncate
	Dimensions     int // 0: the model's full size
	EmbeddingType  string
}

// parseEmbeddingsRequest checks every field's presence, type and value. It
// decodes field by field (rather than into a struct) so each error names
// the field at fault, and so unknown fields are refused.
func parseEmbeddingsRequest(body []byte, maxInputs int) (*embeddingsRequest, *reqError) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, badRequest("", "request body is not a JSON object: "+jsonErr(err))
	}
	if dec.More() {
		return nil, badRequest("", "request body has data after the JSON object")
	}
	if fields == nil {
		return nil, badRequest("", "request body is not a JSON object")
	}
	req := &embeddingsRequest{EncodingFormat: "float", EmbeddingType: typeFloat, Truncate: TruncateNone}
	str := func(name string, raw json.RawMessage) (string, bool, *reqError) {
		if isNull(raw) {
			return "", false, nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, badRequest(name, fmt.Sprintf("'%s' must be a string", name))
		}
		return v, true, nil
	}
	for name, raw := range fields {
		switch name {
		case "model":
			v, ok, e := str(name, raw)
			if e != nil {
				return nil, e
			}
			if !ok || v == "" {
				return nil, badRequest(name, "'model' must be a non-empty string")
			}
			req.Model = v
		case "input":
			in, e := parseInput(raw)
			if e != nil {
				return nil, e
			}
			req.Input = in
		case "input_type":
			v, ok, e := str(name, raw)
			if e != nil {
				return nil, e
			}
			if ok && v != "query" && v != "passage" {
				return nil, badRequest(name, fmt.Sprintf("'input_type' must be 'query' or 'passage', not %q", v))
			}
			req.InputType = v
		case "encoding_format":
			v, ok, e := str(name, raw)
			if e != nil {
				return nil, e
			}
			if ok {
				if v != "float" && v != "base64" {
					return nil, badRequest(name, fmt.Sprintf("'encoding_format' must be 'float' or 'base64', not %q", v))
				}
				req.EncodingFormat = v
			}
		case "truncate":
			v, ok, e := str(name, raw)
			if e != nil {
				return nil, e
			}
			if ok {
				switch v {
				case "NONE":
					req.Truncate = TruncateNone
				case "END":
					req.Truncate = TruncateEnd
				case "START":
					req.Truncate = TruncateStart
				default:
					return nil, badRequest(name, fmt.Sprintf("'truncate' must be 'NONE', 'START' or 'END', not %q", v))
				}
			}
		case "dimensions":
			if isNull(raw) {
				continue
			}
			var d int
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, badRequest(name, "'dimensions' must be an integer")
			}
			if d < 1 {
				return nil, badRequest(name, fmt.Sprintf("'dimensions' must be at least 1, not %d", d))
			}
			req.Dimensions = d
		case "embedding_type":
			v, ok, e := str(name, raw)
			if e != nil {
				return nil, e
			}
			if ok {
				if !validEmbeddingType(v) {
					return nil, badRequest(name, fmt.Sprintf("'embedding_type' must be one of float, int8, uint8, binary, ubinary, not %q", v))
				}
				req.EmbeddingType = v
			}
		case "user":
			if _, _, e := str(name, raw); e != nil {
				return nil, e
			}
		case "modality":
			// nv-ingest's newer clients send modality "text"; text is all
			// this server embeds.
			if e := checkModality(raw); e != nil {
				return nil, e
			}
		default:
			return nil, badRequest(name, fmt.Sprintf("unknown field '%s'", name))
		}
	}
	if req.Model == "" {
		return nil, badRequest("model", "'model' is required")
	}
	if req.Input == nil {
		return nil, badRequest("input", "'input' is required")
	}
	if len(req.Input) > maxInputs {
		return nil, badRequest("input", fmt.Sprintf("'input' has %d items, more than the maximum batch size of %d", len(req.Input), maxInputs))
	}
	return req, nil
}

func parseInput(raw json.RawMessage) ([]string, *reqError) {
	const msg = "'input' must be a string or a non-empty array of strings"
	if isNull(raw) {
		return nil, badRequest("input", msg)
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []json.RawMessage
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest("input", msg)
	}
	if len(many) == 0 {
		return nil, badRequest("input", msg+"; got an empty array")
	}
	out := make([]string, len(many))
	for i, r := range many {
		if isNull(r) || json.Unmarshal(r, &out[i]) != nil {
			return nil, badRequest("input", fmt.Sprintf("'input[%d]' must be a string", i))
		}
	}
	return out, nil
}

func checkModality(raw json.RawMessage) *reqError {
	if isNull(raw) {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one != "text" {
			return badRequest("modality", fmt.Sprintf("only the 'text' modality is supported, not %q", one))
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return badRequest("modality", "'modality' must be a string or an array of strings")
	}
	for _, m := range many {
		if m != "text" {
			return badRequest("modality", fmt.Sprintf("only the 'text' modality is supported, not %q", m))
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	return err.Error()
}

type embeddingsResponse struct {
	Object string            `json:"object"`
	Data   []embeddingObject `json:"data"`
	Model  string            `json:"model"`
	Usage  usage             `json:"usage"`
}

type embeddingObject struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

type usage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// handleEmbeddings is POST /v1/embeddings.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	adm, err := s.admit()
	if err != nil {
		s.met.rejected.Inc(rejectReason(err))
		admissionError(err).write(w)
		return
	}
	defer adm.release()
	m := adm.model

	body, rerr := s.readBody(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	req, rerr := parseEmbeddingsRequest(body, s.cfg.MaxBatchSize)
	if rerr != nil {
		rerr.write(w)
		return
	}
	// The served name, or the name with -query / -passage, which sets the
	// input type for OpenAI clients that cannot send input_type.
	inputType := req.InputType
	switch {
	case req.Model == s.cfg.ServedModelName:
	case req.Model == s.cfg.ServedModelName+"-query" || req.Model == s.cfg.ServedModelName+"-passage":
		suffixType := req.Model[strings.LastIndexByte(req.Model, '-')+1:]
		if inputType != "" && inputType != suffixType {
			badRequest("input_type", fmt.Sprintf("'input_type' %q contradicts the model name %q", inputType, req.Model)).write(w)
			return
		}
		inputType = suffixType
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist; this server serves `%s`", req.Model, s.cfg.ServedModelName))
		return
	}
	prompt := ""
	if m.asymmetric {
		switch inputType {
		case "":
			badRequest("input_type", "'input_type' parameter is required for asymmetric models").write(w)
			return
		case "query":
			prompt = m.query
		case "passage":
			prompt = m.passage
		}
	}
	dims := m.hidden
	if req.Dimensions != 0 {
		if req.Dimensions > m.hidden {
			badRequest("dimensions", fmt.Sprintf("'dimensions' must be between 1 and %d, not %d", m.hidden, req.Dimensions)).write(w)
			return
		}
		dims = req.Dimensions
	}
	addLog(r.Context(), slog.String("input_type", inputType), slog.Int("dimensions", dims))

	res, err := s.embed(r.Context(), m, req.Input, prompt, req.Truncate)
	if err != nil {
		s.writeEmbedError(w, err)
		return
	}
	out := embeddingsResponse{Object: "list", Model: req.Model, Data: make([]embeddingObject, len(res.vecs))}
	for i, v := range res.vecs {
		v = truncateNormalise(v, dims)
		var e any
		switch {
		case req.EncodingFormat == "base64":
			e = encodeBase64(v, req.EmbeddingType)
		case req.EmbeddingType == typeFloat:
			e = v
		default:
			e = quantize(v, req.EmbeddingType)
		}
		out.Data[i] = embeddingObject{Object: "embedding", Index: i, Embedding: e}
		out.Usage.PromptTokens += res.tokens[i]
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	res.timing.setHeaders(w)
	writeJSON(w, http.StatusOK, out)
}

// writeEmbedError answers a pipeline failure in the NIM error format.
func (s *Server) writeEmbedError(w http.ResponseWriter, err error) {
	var re *reqError
	switch {
	case errors.Is(err, errClientGone):
		// Nobody is listening; the access log records 499.
	case errors.As(err, &re):
		re.write(w)
	default:
		s.log.Error("embedding failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "", "internal_error", err.Error())
	}
}

func rejectReason(err error) string {
	switch err {
	case errFull:
		return "queue_full"
	case errDraining:
		return "draining"
	}
	return "not_ready"
}

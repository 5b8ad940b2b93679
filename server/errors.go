package server

import (
	"encoding/json"
	"net/http"
)

// apiError is the NIM/OpenAI error body. Detail repeats the message at the
// top level because FastAPI-based clients (and the NIM itself) read
// "detail".
type apiError struct {
	Error  apiErrorBody `json:"error"`
	Detail string       `json:"detail"`
}

type apiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"response encoding failed","type":"internal_error","param":null,"code":"internal_error"},"detail":"response encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// writeError writes a NIM error; param names the request field at fault
// ("" for none).
func writeError(w http.ResponseWriter, status int, typ, param, code, msg string) {
	e := apiError{Error: apiErrorBody{Message: msg, Type: typ, Code: code}, Detail: msg}
	if param != "" {
		e.Error.Param = &param
	}
	writeJSON(w, status, e)
}

// writeDetail writes a FastAPI-style error, as the WAYWO service does.
func writeDetail(w http.ResponseWriter, status int, detail any) {
	writeJSON(w, status, map[string]any{"detail": detail})
}

// reqError is a request rejected with a status; the handlers turn it into
// the error body of their API.
type reqError struct {
	status int
	typ    string
	param  string
	code   string
	msg    string
}

func (e *reqError) Error() string { return e.msg }

func badRequest(param, msg string) *reqError {
	return &reqError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, code: "invalid_value", msg: msg}
}

func (e *reqError) write(w http.ResponseWriter) {
	if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, e.status, e.typ, e.param, e.code, e.msg)
}

// admissionError maps an admission refusal to its status.
func admissionError(err error) *reqError {
	switch err {
	case errFull:
		return &reqError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "queue_full", msg: "the request queue is full; retry later"}
	case errDraining:
		return &reqError{status: http.StatusServiceUnavailable, typ: "service_unavailable", code: "shutting_down", msg: "the server is shutting down"}
	}
	return &reqError{status: http.StatusServiceUnavailable, typ: "service_unavailable", code: "model_not_ready", msg: "the model is not loaded yet"}
}

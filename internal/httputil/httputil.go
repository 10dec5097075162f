// Package httputil is the HTTP edge shared by every component's routing:
// Matrix error responses, JSON request decoding with size limits, the
// handler adapter that turns returned errors into {"errcode","error"}
// bodies, and the middleware every listener runs (panic recovery, CORS,
// unknown-endpoint and wrong-method answers, metrics).
package httputil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
)

// Handler is a route handler that returns its error instead of writing it.
type Handler func(w http.ResponseWriter, r *http.Request) error

// Adapter turns Handlers into http.HandlerFuncs, writing errors as Matrix
// errors and logging server-side failures once.
type Adapter struct{ Log *slog.Logger }

// H adapts h.
func (a Adapter) H(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.WriteError(w, r, err)
		}
	}
}

// WriteError writes err as a Matrix error. Errors that are not *apierr.Error
// are server faults: they are logged and answered 500 M_UNKNOWN without
// detail.
func (a Adapter) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		err = apierr.New(apierr.CodeTooLarge, "request body is larger than %d bytes", mb.Limit)
	}
	e, ok := apierr.As(err)
	if !ok {
		if r.Context().Err() != nil {
			// The client went away; nobody reads the answer.
			return
		}
		log := a.Log
		if log == nil {
			log = slog.Default()
		}
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = apierr.WithStatus(http.StatusInternalServerError, apierr.CodeUnknown, "internal server error")
	}
	WriteJSON(w, e.HTTPStatus(), e)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errcode":"M_UNKNOWN","error":"could not encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// JSON writes a 200 response; it returns nil so handlers can end with it.
func JSON(w http.ResponseWriter, v any) error {
	WriteJSON(w, http.StatusOK, v)
	return nil
}

// DecodeJSON reads the request body into v: invalid JSON is M_NOT_JSON, JSON
// of the wrong shape M_BAD_JSON, a body over the listener's limit
// M_TOO_LARGE. An empty body decodes as {}.
func DecodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return apierr.New(apierr.CodeTooLarge, "request body is larger than %d bytes", mb.Limit)
		}
		return fmt.Errorf("read request body: %w", err)
	}
	return Unmarshal(data, v)
}

// Unmarshal decodes a JSON request body with the errors of DecodeJSON.
func Unmarshal(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		data = []byte("{}")
	}
	if !json.Valid(data) {
		return apierr.New(apierr.CodeNotJSON, "request body is not valid JSON")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return apierr.BadJSON("request body has the wrong shape: %s", describe(err))
	}
	return nil
}

func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", te.Field, kind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("expected %s, not %s", kind(te.Type.Kind().String()), te.Value)
	}
	return err.Error()
}

func kind(k string) string {
	switch k {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a " + k
}

// AccessToken returns the request's access token from the Authorization
// header, or the access_token query parameter the spec still allows; an
// absent token is M_MISSING_TOKEN.
func AccessToken(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		const p = "Bearer "
		if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
			return strings.TrimSpace(h[len(p):]), nil
		}
		return "", apierr.New(apierr.CodeMissingToken, "Authorization header is not a Bearer token")
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, nil
	}
	return "", apierr.New(apierr.CodeMissingToken, "missing access token")
}

// Package apierr is the one error type that crosses component boundaries.
//
// A component's internal API returns *Error for failures a caller acts on
// (a Matrix errcode and a message). It encodes to JSON, so the polylith
// transport (internal/rpc) carries it unchanged and errors.As works the same
// on both transports. The HTTP layer maps Code to a status through Status, the
// single table for that mapping.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Matrix error codes used by the server (client-server API "Standard error response").
const (
	CodeForbidden           = "M_FORBIDDEN"
	CodeUnknownToken        = "M_UNKNOWN_TOKEN"
	CodeMissingToken        = "M_MISSING_TOKEN"
	CodeBadJSON             = "M_BAD_JSON"
	CodeNotJSON             = "M_NOT_JSON"
	CodeNotFound            = "M_NOT_FOUND"
	CodeLimitExceeded       = "M_LIMIT_EXCEEDED"
	CodeUnrecognized        = "M_UNRECOGNIZED"
	CodeUnknown             = "M_UNKNOWN"
	CodeUserInUse           = "M_USER_IN_USE"
	CodeInvalidUsername     = "M_INVALID_USERNAME"
	CodeInvalidParam        = "M_INVALID_PARAM"
	CodeTooLarge            = "M_TOO_LARGE"
	CodeMissingParam        = "M_MISSING_PARAM"
	CodeUnsupportedRoomVer  = "M_UNSUPPORTED_ROOM_VERSION"
	CodeRoomInUse           = "M_ROOM_IN_USE"
	CodeExclusive           = "M_EXCLUSIVE"
	CodeUserDeactivated     = "M_USER_DEACTIVATED"
	CodeInvalidRoomState    = "M_INVALID_ROOM_STATE"
	CodeBadState            = "M_BAD_STATE"
	CodeGuestAccessForbided = "M_GUEST_ACCESS_FORBIDDEN"
)

// Error is a Matrix error: errcode, message and, where the default for the
// code is wrong, an explicit HTTP status.
type Error struct {
	Code   string `json:"errcode"`
	Msg    string `json:"error"`
	Status int    `json:"status,omitempty"`
	// SoftLogout is the spec's soft_logout flag on M_UNKNOWN_TOKEN.
	SoftLogout bool `json:"soft_logout,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// HTTPStatus is the status the error is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return Status(e.Code)
}

// statusByCode is the single errcode → HTTP status table.
var statusByCode = map[string]int{
	CodeForbidden:           http.StatusForbidden,
	CodeUnknownToken:        http.StatusUnauthorized,
	CodeMissingToken:        http.StatusUnauthorized,
	CodeBadJSON:             http.StatusBadRequest,
	CodeNotJSON:             http.StatusBadRequest,
	CodeNotFound:            http.StatusNotFound,
	CodeLimitExceeded:       http.StatusTooManyRequests,
	CodeUnrecognized:        http.StatusNotFound,
	CodeUnknown:             http.StatusBadRequest,
	CodeUserInUse:           http.StatusBadRequest,
	CodeInvalidUsername:     http.StatusBadRequest,
	CodeInvalidParam:        http.StatusBadRequest,
	CodeTooLarge:            http.StatusRequestEntityTooLarge,
	CodeMissingParam:        http.StatusBadRequest,
	CodeUnsupportedRoomVer:  http.StatusBadRequest,
	CodeRoomInUse:           http.StatusBadRequest,
	CodeExclusive:           http.StatusBadRequest,
	CodeUserDeactivated:     http.StatusForbidden,
	CodeInvalidRoomState:    http.StatusBadRequest,
	CodeBadState:            http.StatusBadRequest,
	CodeGuestAccessForbided: http.StatusForbidden,
}

// Status maps an errcode to its HTTP status; unknown codes are 400, since
// every code the server invents describes a client mistake.
func Status(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// New returns an error with the given code.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// WithStatus returns an error with an explicit status.
func WithStatus(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Status: status}
}

// Forbidden is M_FORBIDDEN 403.
func Forbidden(format string, args ...any) *Error { return New(CodeForbidden, format, args...) }

// NotFound is M_NOT_FOUND 404.
func NotFound(format string, args ...any) *Error { return New(CodeNotFound, format, args...) }

// BadJSON is M_BAD_JSON 400.
func BadJSON(format string, args ...any) *Error { return New(CodeBadJSON, format, args...) }

// InvalidParam is M_INVALID_PARAM 400.
func InvalidParam(format string, args ...any) *Error { return New(CodeInvalidParam, format, args...) }

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// HasCode reports whether err carries the Matrix errcode code.
func HasCode(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}

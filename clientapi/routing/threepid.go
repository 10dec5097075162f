package routing

import (
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// registerThreepid adds the third-party identifier endpoints. This server
// has no identity server and sends no email or SMS, so no identifier can
// ever be validated: the endpoints answer with the spec's refusals, and
// the list of identifiers is always empty.
func (rt *Routes) registerThreepid(mux *http.ServeMux) {
	mux.HandleFunc("GET "+v3+"/account/3pid", rt.authed(rt.listThreepids))
	mux.HandleFunc("POST "+v3+"/account/3pid", rt.authed(rt.threepidAuthFailed))
	mux.HandleFunc("POST "+v3+"/account/3pid/add", rt.authed(rt.threepidAuthFailed))
	mux.HandleFunc("POST "+v3+"/account/3pid/bind", rt.authed(rt.threepidBind))
	mux.HandleFunc("POST "+v3+"/account/3pid/delete", rt.authed(rt.threepidRemove))
	mux.HandleFunc("POST "+v3+"/account/3pid/unbind", rt.authed(rt.threepidRemove))
	for _, medium := range []string{"email", "msisdn"} {
		mux.HandleFunc("POST "+v3+"/account/3pid/"+medium+"/requestToken", rt.a.H(rt.threepidMediumUnsupported))
		mux.HandleFunc("POST "+v3+"/register/"+medium+"/requestToken", rt.a.H(rt.threepidDenied))
		mux.HandleFunc("POST "+v3+"/account/password/"+medium+"/requestToken", rt.a.H(rt.threepidDenied))
	}
}

type threepidRequest struct {
	ClientSecret string `json:"client_secret"`
	SID          string `json:"sid"`
	Medium       string `json:"medium"`
	Address      string `json:"address"`
	IDServer     string `json:"id_server"`
}

func (rt *Routes) listThreepids(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	return httputil.JSON(w, map[string]any{"threepids": []any{}})
}

// threepidAuthFailed answers add: no validation session is ever created
// here, so none can have been completed.
func (rt *Routes) threepidAuthFailed(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req threepidRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	return apierr.New("M_THREEPID_AUTH_FAILED", "third-party identifiers cannot be validated on this server")
}

// threepidBind answers bind: no identity server is trusted.
func (rt *Routes) threepidBind(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req threepidRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	return apierr.New("M_SERVER_NOT_TRUSTED", "this server trusts no identity server")
}

// threepidRemove answers delete and unbind: nothing is bound, so there is
// nothing to remove, which the spec's "no-support" result says.
func (rt *Routes) threepidRemove(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req threepidRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Medium == "" || req.Address == "" {
		return apierr.New(apierr.CodeMissingParam, "medium and address are required")
	}
	return httputil.JSON(w, map[string]string{"id_server_unbind_result": "no-support"})
}

// threepidMediumUnsupported answers /account/3pid/{medium}/requestToken.
func (rt *Routes) threepidMediumUnsupported(w http.ResponseWriter, r *http.Request) error {
	var req threepidRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	return apierr.New("M_THREEPID_MEDIUM_NOT_SUPPORTED", "this server does not send email or SMS")
}

// threepidDenied answers the registration and password reset requestToken
// endpoints: the server does not permit third-party identifiers.
func (rt *Routes) threepidDenied(w http.ResponseWriter, r *http.Request) error {
	var req threepidRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	return apierr.WithStatus(http.StatusForbidden, "M_THREEPID_DENIED", "third-party identifiers are not permitted on this server")
}

package routing

import (
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerDevices(mux *http.ServeMux) {
	mux.HandleFunc("GET "+v3+"/devices", rt.authed(rt.listDevices))
	mux.HandleFunc("GET "+v3+"/devices/{deviceId}", rt.authed(rt.getDevice))
	mux.HandleFunc("PUT "+v3+"/devices/{deviceId}", rt.authed(rt.putDevice))
	mux.HandleFunc("DELETE "+v3+"/devices/{deviceId}", rt.authed(rt.deleteDevice))
	mux.HandleFunc("POST "+v3+"/delete_devices", rt.authed(rt.deleteDevices))
}

func (rt *Routes) listDevices(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.users.QueryDevices(r.Context(), userapi.QueryDevicesRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]any{"devices": res.Devices})
}

func (rt *Routes) getDevice(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.users.QueryDevices(r.Context(), userapi.QueryDevicesRequest{UserID: dev.UserID, DeviceID: r.PathValue("deviceId")})
	if err != nil {
		return err
	}
	return httputil.JSON(w, res.Devices[0])
}

type putDeviceRequest struct {
	DisplayName *string `json:"display_name"`
}

// putDevice is PUT /devices/{deviceId}: only the display name can change;
// without one the request changes nothing.
func (rt *Routes) putDevice(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req putDeviceRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	id := r.PathValue("deviceId")
	if req.DisplayName == nil {
		// Still 404 for a device that does not exist, as the spec asks.
		_, err := rt.users.QueryDevices(r.Context(), userapi.QueryDevicesRequest{UserID: dev.UserID, DeviceID: id})
		if err != nil {
			return err
		}
		return httputil.JSON(w, struct{}{})
	}
	if _, err := rt.users.UpdateDevice(r.Context(), userapi.UpdateDeviceRequest{UserID: dev.UserID, DeviceID: id, DisplayName: *req.DisplayName}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

type deleteDeviceRequest struct {
	Auth *uiaAuth `json:"auth"`
}

// deleteDevice is DELETE /devices/{deviceId}, behind user-interactive auth.
func (rt *Routes) deleteDevice(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req deleteDeviceRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	id := r.PathValue("deviceId")
	// The spec answers 404 for an unknown device before any auth.
	if _, err := rt.users.QueryDevices(r.Context(), userapi.QueryDevicesRequest{UserID: dev.UserID, DeviceID: id}); err != nil {
		return err
	}
	user, err := rt.requirePassword(w, r, dev.UserID, req.Auth, "delete_devices:"+dev.UserID)
	if user == "" || err != nil {
		return err
	}
	if _, err := rt.users.DeleteDevices(r.Context(), userapi.DeleteDevicesRequest{UserID: dev.UserID, DeviceIDs: []string{id}}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

type deleteDevicesRequest struct {
	Auth    *uiaAuth  `json:"auth"`
	Devices *[]string `json:"devices"`
}

// deleteDevices is POST /delete_devices, behind user-interactive auth;
// unknown ids are ignored.
func (rt *Routes) deleteDevices(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var req deleteDevicesRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return apierr.BadJSON("devices is required")
	}
	user, err := rt.requirePassword(w, r, dev.UserID, req.Auth, "delete_devices:"+dev.UserID)
	if user == "" || err != nil {
		return err
	}
	if len(*req.Devices) > 0 {
		if _, err := rt.users.DeleteDevices(r.Context(), userapi.DeleteDevicesRequest{UserID: dev.UserID, DeviceIDs: *req.Devices}); err != nil {
			return err
		}
	}
	return httputil.JSON(w, struct{}{})
}

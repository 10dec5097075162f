package internal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
)

// ownLocalpart is localpart for a user that must be of this server; the
// error is M_NOT_FOUND otherwise.
func (u *UserAPI) ownLocalpart(userID string) (string, error) {
	local, ok := u.localpart(userID)
	if !ok {
		return "", apierr.NotFound("no such user")
	}
	return local, nil
}

// passErr keeps *apierr.Error values as they are and maps a missing row to
// M_NOT_FOUND; other errors get what as context.
func passErr(err error, notFound, what string) error {
	if _, ok := apierr.As(err); ok {
		return err
	}
	if isNotFound(err) {
		return apierr.NotFound("%s", notFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ChangePassword implements api.API.
func (u *UserAPI) ChangePassword(ctx context.Context, req api.ChangePasswordRequest) (api.ChangePasswordResponse, error) {
	defer u.tokens.invalidate(req.UserID)
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.ChangePasswordResponse{}, err
	}
	if req.NewPassword == "" {
		return api.ChangePasswordResponse{}, apierr.InvalidParam("empty password")
	}
	// Hash outside the transaction, as CreateAccount does.
	h, err := u.hashPassword(req.NewPassword, req.UserID)
	if err != nil {
		return api.ChangePasswordResponse{}, err
	}
	err = u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := u.st.Accounts.UpdatePassword(ctx, tx, local, h); err != nil {
			return err
		}
		if req.LogoutDevices {
			_, err := u.st.Devices.DeleteAllExcept(ctx, tx, local, req.KeepDeviceID)
			return err
		}
		return nil
	})
	if err != nil {
		return api.ChangePasswordResponse{}, passErr(err, "no such user", "change password of "+req.UserID)
	}
	return api.ChangePasswordResponse{}, nil
}

// DeactivateAccount implements api.API.
func (u *UserAPI) DeactivateAccount(ctx context.Context, req api.DeactivateAccountRequest) (api.DeactivateAccountResponse, error) {
	defer u.tokens.invalidate(req.UserID)
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.DeactivateAccountResponse{}, err
	}
	err = u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := u.st.Accounts.Deactivate(ctx, tx, local); err != nil {
			return err
		}
		_, err := u.st.Devices.DeleteAll(ctx, tx, local)
		return err
	})
	if err != nil {
		return api.DeactivateAccountResponse{}, passErr(err, "no such user", "deactivate "+req.UserID)
	}
	return api.DeactivateAccountResponse{}, nil
}

// QueryDevices implements api.API.
func (u *UserAPI) QueryDevices(ctx context.Context, req api.QueryDevicesRequest) (api.QueryDevicesResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.QueryDevicesResponse{}, err
	}
	devs, err := u.st.Devices.SelectAll(ctx, u.st.DB.Reader(), local, req.DeviceID)
	if err != nil {
		return api.QueryDevicesResponse{}, err
	}
	if req.DeviceID != "" && len(devs) == 0 {
		return api.QueryDevicesResponse{}, apierr.NotFound("no such device")
	}
	out := make([]api.DeviceInfo, 0, len(devs))
	for _, d := range devs {
		seen := d.LastSeenMS
		if seen == 0 {
			seen = d.CreatedMS // devices from before migration 2
		}
		out = append(out, api.DeviceInfo{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.IP, LastSeenTS: seen})
	}
	return api.QueryDevicesResponse{Devices: out}, nil
}

// UpdateDevice implements api.API.
func (u *UserAPI) UpdateDevice(ctx context.Context, req api.UpdateDeviceRequest) (api.UpdateDeviceResponse, error) {
	defer u.tokens.invalidate(req.UserID)
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.UpdateDeviceResponse{}, err
	}
	if err := u.st.Devices.UpdateDisplayName(ctx, u.st.DB, local, req.DeviceID, req.DisplayName); err != nil {
		return api.UpdateDeviceResponse{}, passErr(err, "no such device", "update device")
	}
	return api.UpdateDeviceResponse{}, nil
}

// SetProfile implements api.API. The read and the write share a
// transaction, so two concurrent changes of different fields both stay.
func (u *UserAPI) SetProfile(ctx context.Context, req api.SetProfileRequest) (api.SetProfileResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.SetProfileResponse{}, err
	}
	var res api.SetProfileResponse
	err = u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		acc, err := u.st.Accounts.Select(ctx, tx, local)
		if err != nil {
			return err
		}
		if acc.Deactivated {
			return apierr.NotFound("no such user")
		}
		p, err := u.st.Profiles.Select(ctx, tx, local)
		if err != nil {
			return err
		}
		before := p
		if req.DisplayName != nil {
			p.DisplayName = *req.DisplayName
		}
		if req.AvatarURL != nil {
			p.AvatarURL = *req.AvatarURL
		}
		res = api.SetProfileResponse{Profile: api.QueryProfileResponse{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}, Changed: p != before}
		if !res.Changed {
			return nil
		}
		return u.st.Profiles.Update(ctx, tx, p)
	})
	if err != nil {
		return api.SetProfileResponse{}, passErr(err, "no such user", "set profile of "+req.UserID)
	}
	return res, nil
}

// RefreshAccessToken implements api.API.
func (u *UserAPI) RefreshAccessToken(ctx context.Context, req api.RefreshAccessTokenRequest) (api.RefreshAccessTokenResponse, error) {
	defer u.tokens.invalidate("")
	unknown := apierr.New(apierr.CodeUnknownToken, "unknown refresh token")
	if !strings.HasPrefix(req.RefreshToken, refreshPrefix) {
		return api.RefreshAccessTokenResponse{}, unknown
	}
	token, refresh := newAccessToken(), newRefreshToken()
	now := u.nowMS()
	_, err := u.st.Devices.Rotate(ctx, u.st.DB, hashToken(req.RefreshToken), hashToken(token), hashToken(refresh),
		now+u.tokenLife.Milliseconds(), now)
	if isNotFound(err) {
		return api.RefreshAccessTokenResponse{}, unknown
	}
	if err != nil {
		return api.RefreshAccessTokenResponse{}, err
	}
	return api.RefreshAccessTokenResponse{AccessToken: token, RefreshToken: refresh, ExpiresInMS: u.tokenLife.Milliseconds()}, nil
}

// QueryAccountTypes implements api.API.
func (u *UserAPI) QueryAccountTypes(ctx context.Context, req api.QueryAccountTypesRequest) (api.QueryAccountTypesResponse, error) {
	ids := make(map[string]string, len(req.UserIDs)) // localpart → user id
	locals := make([]string, 0, len(req.UserIDs))
	for _, id := range req.UserIDs {
		if local, ok := u.localpart(id); ok {
			if _, dup := ids[local]; !dup {
				locals = append(locals, local)
			}
			ids[local] = id
		}
	}
	types, err := u.st.Accounts.SelectTypes(ctx, u.st.DB.Reader(), locals)
	if err != nil {
		return api.QueryAccountTypesResponse{}, err
	}
	out := make(map[string]string, len(types))
	for local, typ := range types {
		out[ids[local]] = typ
	}
	return api.QueryAccountTypesResponse{AccountTypes: out}, nil
}

// UpgradeGuest implements api.API.
func (u *UserAPI) UpgradeGuest(ctx context.Context, req api.UpgradeGuestRequest) (api.UpgradeGuestResponse, error) {
	// The token cache holds the account type of the guest's devices: it
	// must not outlive the change (after it commits).
	defer u.tokens.invalidate(req.UserID)
	notGuest := apierr.Forbidden("%s is not a guest account of this server", req.UserID)
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.UpgradeGuestResponse{}, notGuest
	}
	var hash string
	if req.Password != "" {
		// Hash outside the transaction, as CreateAccount does.
		h, err := u.hashPassword(req.Password, req.UserID)
		if err != nil {
			return api.UpgradeGuestResponse{}, err
		}
		hash = h
	}
	err := u.st.Accounts.UpgradeGuest(ctx, u.st.DB, local, hash, api.AccountGuest, api.AccountUser)
	if isNotFound(err) {
		return api.UpgradeGuestResponse{}, notGuest
	}
	if err != nil {
		return api.UpgradeGuestResponse{}, err
	}
	return api.UpgradeGuestResponse{}, nil
}

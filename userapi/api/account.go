package api

import "context"

// AccountAPI is the part of the userapi that manages existing accounts:
// passwords, deactivation, the device list, profiles and refresh tokens.
type AccountAPI interface {
	// ChangePassword sets a new password. With LogoutDevices every device
	// except KeepDeviceID is deleted (its tokens with it).
	ChangePassword(ctx context.Context, req ChangePasswordRequest) (ChangePasswordResponse, error)
	// DeactivateAccount deactivates an account for good: its devices and
	// tokens are deleted, its password cleared; the localpart stays taken.
	DeactivateAccount(ctx context.Context, req DeactivateAccountRequest) (DeactivateAccountResponse, error)
	// QueryDevices lists a user's devices, sorted by device id; with
	// DeviceID set only that one (M_NOT_FOUND if it does not exist).
	QueryDevices(ctx context.Context, req QueryDevicesRequest) (QueryDevicesResponse, error)
	// UpdateDevice sets a device's display name; M_NOT_FOUND if no such device.
	UpdateDevice(ctx context.Context, req UpdateDeviceRequest) (UpdateDeviceResponse, error)
	// SetProfile sets the fields that are non-nil (an empty string clears
	// one) and returns the profile after the change and whether it changed.
	SetProfile(ctx context.Context, req SetProfileRequest) (SetProfileResponse, error)
	// RefreshAccessToken exchanges a refresh token for a new access token
	// and a new refresh token; the old pair stops working.
	// M_UNKNOWN_TOKEN (401) for an unknown or used refresh token.
	RefreshAccessToken(ctx context.Context, req RefreshAccessTokenRequest) (RefreshAccessTokenResponse, error)
	// QueryAccountTypes returns the account type (AccountUser or
	// AccountGuest) of each of UserIDs that is an account of this server;
	// other ids are left out.
	QueryAccountTypes(ctx context.Context, req QueryAccountTypesRequest) (QueryAccountTypesResponse, error)
	// UpgradeGuest makes a guest account a user account with a password
	// (the empty password: none), keeping its user id, devices and tokens.
	// M_FORBIDDEN when UserID is not a live guest account of this server.
	UpgradeGuest(ctx context.Context, req UpgradeGuestRequest) (UpgradeGuestResponse, error)
}

type ChangePasswordRequest struct {
	UserID        string `json:"user_id"`
	NewPassword   string `json:"new_password"`
	LogoutDevices bool   `json:"logout_devices,omitempty"`
	KeepDeviceID  string `json:"keep_device_id,omitempty"`
}
type ChangePasswordResponse struct{}

type DeactivateAccountRequest struct {
	UserID string `json:"user_id"`
}
type DeactivateAccountResponse struct{}

// DeviceInfo is a device as the device list shows it.
type DeviceInfo struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	// LastSeenTS is when the device last logged in or refreshed its token
	// (ms); per-request tracking would cost a write per request.
	LastSeenTS int64 `json:"last_seen_ts,omitempty"`
}

type QueryDevicesRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
}
type QueryDevicesResponse struct {
	Devices []DeviceInfo `json:"devices"`
}

type UpdateDeviceRequest struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name"`
}
type UpdateDeviceResponse struct{}

type SetProfileRequest struct {
	UserID      string  `json:"user_id"`
	DisplayName *string `json:"displayname,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}
type SetProfileResponse struct {
	Profile QueryProfileResponse `json:"profile"`
	Changed bool                 `json:"changed"`
}

type RefreshAccessTokenRequest struct {
	RefreshToken string `json:"refresh_token"`
}
type RefreshAccessTokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresInMS  int64  `json:"expires_in_ms"`
}

type QueryAccountTypesRequest struct {
	UserIDs []string `json:"user_ids"`
}
type QueryAccountTypesResponse struct {
	// AccountTypes maps user id to account type.
	AccountTypes map[string]string `json:"account_types"`
}

type UpgradeGuestRequest struct {
	UserID   string `json:"user_id"`
	Password string `json:"password,omitempty"`
}
type UpgradeGuestResponse struct{}

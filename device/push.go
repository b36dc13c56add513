package device

import (
	"context"
	"time"
)

// PushToken is how the Core reaches a device through a push service
// (APNs, FCM, WNS). A device without one is reached by its scheduled
// check-ins and by the agent's own long poll.
type PushToken struct {
	DeviceID string `json:"device_id"`
	// Provider is "apns", "fcm" or "wns".
	Provider string `json:"provider"`
	// Token is the APNs device token, FCM registration token or WNS
	// channel URI.
	Token string `json:"-"`
	// Topic is the APNs topic; PushMagic the Apple MDM push magic.
	Topic     string    `json:"topic,omitempty"`
	PushMagic string    `json:"-"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PushStore keeps the push tokens of devices.
type PushStore interface {
	// SetPushToken stores (or replaces) the device's token. A removed or
	// unknown device is errs.ErrNotFound.
	SetPushToken(ctx context.Context, t PushToken) error
	// PushTokens returns the tokens of the listed devices that have one,
	// in no particular order; devices without one are left out.
	PushTokens(ctx context.Context, deviceIDs []string) ([]PushToken, error)
	// DropPushToken forgets the device's token if it is still token (the
	// provider said it is no longer valid; a newer one stays). Dropping a
	// token that is not stored is not an error.
	DropPushToken(ctx context.Context, deviceID, token string) error
}

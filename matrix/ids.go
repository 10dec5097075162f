package matrix

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalidID is wrapped by every error that the identifier parsers return,
// so callers can map any malformed identifier to one Matrix error code.
var ErrInvalidID = errors.New("invalid identifier")

// MaxIDLength is the limit, in bytes, on user IDs, room IDs, event IDs and
// room aliases including the sigil and the domain (appendices, "Identifier
// Grammar").
const MaxIDLength = 255

func invalid(kind, s, why string) error {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Errorf("%w: %s %q: %s", ErrInvalidID, kind, s, why)
}

// ServerName is a homeserver's name: a DNS name, an IPv4 literal or a
// bracketed IPv6 literal, with an optional port. Server names are compared
// case-sensitively (appendices, "Server Name").
type ServerName string

// ParseServerName checks s against the server name grammar of the appendices:
//
//	server_name = hostname [ ":" port ]
//	port        = 1*5DIGIT
//	hostname    = IPv4address / "[" IPv6address "]" / dns-name
//	dns-name    = 1*255dns-char ; DIGIT / ALPHA / "-" / "."
//
// The grammar is applied as written: "1.2.3.999" is accepted as a dns-name
// because it matches that production, and a 5-digit port above 65535 is
// accepted because the grammar allows it (HostPort reports it as is). Being
// stricter here would make us drop events that other servers accept.
func ParseServerName(s string) (ServerName, error) {
	if s == "" {
		return "", invalid("server name", s, "empty")
	}
	host, port, hasPort := splitHostPort(s)
	if hasPort {
		if len(port) < 1 || len(port) > 5 {
			return "", invalid("server name", s, "port must be 1 to 5 digits")
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return "", invalid("server name", s, "port must be digits")
			}
		}
	}
	if err := checkHostname(host); err != nil {
		return "", invalid("server name", s, err.Error())
	}
	return ServerName(s), nil
}

// splitHostPort separates the port from a server name without validating
// either part. A bracketed IPv6 literal keeps its brackets in host.
func splitHostPort(s string) (host, port string, hasPort bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return s, "", false
		}
		rest := s[end+1:]
		if rest == "" {
			return s, "", false
		}
		if rest[0] != ':' {
			// Garbage after the bracket: return it inside host so that
			// checkHostname rejects it.
			return s, "", false
		}
		return s[:end+1], rest[1:], true
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func checkHostname(host string) error {
	if host == "" {
		return errors.New("empty hostname")
	}
	if host[0] == '[' {
		if len(host) < 2 || host[len(host)-1] != ']' {
			return errors.New("unterminated IPv6 literal")
		}
		lit := host[1 : len(host)-1]
		if len(lit) < 2 || len(lit) > 45 {
			return errors.New("IPv6 literal must be 2 to 45 characters")
		}
		for i := 0; i < len(lit); i++ {
			c := lit[i]
			if !isDigit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') && c != ':' && c != '.' {
				return errors.New("invalid character in IPv6 literal")
			}
		}
		// RFC 3513 section 2.2 forms, including an embedded IPv4 tail.
		addr, err := netip.ParseAddr(lit)
		if err != nil || !addr.Is6() {
			return errors.New("invalid IPv6 literal")
		}
		return nil
	}
	if len(host) > 255 {
		return errors.New("DNS name longer than 255 characters")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !isDigit(c) && !isAlpha(c) && c != '-' && c != '.' {
			return fmt.Errorf("invalid character %q in hostname", c)
		}
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// HostPort splits the server name into its hostname (IPv6 literals keep their
// brackets, as the server discovery algorithm wants them) and its explicit
// port, if any. It does not validate; use ParseServerName for that.
func (s ServerName) HostPort() (host string, port int, hasPort bool) {
	h, p, ok := splitHostPort(string(s))
	if !ok {
		return h, 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return string(s), 0, false
	}
	return h, n, true
}

// String returns the server name.
func (s ServerName) String() string { return string(s) }

// UserID is a Matrix user ID, "@localpart:server".
type UserID string

// ParseUserID parses a user ID as found in events. It accepts historical
// localparts: the spec ("Historical User IDs") says servers MUST accept any
// non-surrogate code points except ":" and NUL, including the empty string,
// because rooms contain such senders. New accounts are checked with
// ValidateLocalpart instead. The whole ID must not exceed 255 bytes.
func ParseUserID(s string) (UserID, error) {
	local, server, err := splitSigilID(s, '@', "user ID")
	if err != nil {
		return "", err
	}
	if err := checkHistoricalLocalpart(local); err != nil {
		return "", invalid("user ID", s, err.Error())
	}
	if _, err := ParseServerName(server); err != nil {
		return "", invalid("user ID", s, "bad server name")
	}
	return UserID(s), nil
}

// splitSigilID checks the sigil and length, then splits at the first ':',
// which cannot occur in a localpart.
func splitSigilID(s string, sigil byte, kind string) (local, server string, err error) {
	if len(s) == 0 || s[0] != sigil {
		return "", "", invalid(kind, s, fmt.Sprintf("must start with %q", sigil))
	}
	if len(s) > MaxIDLength {
		return "", "", invalid(kind, s, "longer than 255 bytes")
	}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return "", "", invalid(kind, s, "missing ':server' part")
	}
	return s[1:i], s[i+1:], nil
}

// checkHistoricalLocalpart allows any valid UTF-8 except NUL (":" was already
// excluded by splitting). Surrogates cannot appear in valid UTF-8.
func checkHistoricalLocalpart(local string) error {
	if !utf8.ValidString(local) {
		return errors.New("localpart is not valid UTF-8")
	}
	if strings.IndexByte(local, 0) >= 0 {
		return errors.New("localpart contains NUL")
	}
	return nil
}

// NewUserID joins a localpart and a server name. It does not validate; call
// ValidateLocalpart on localparts chosen by users.
func NewUserID(localpart string, server ServerName) UserID {
	return UserID("@" + localpart + ":" + string(server))
}

// Localpart returns the part between "@" and the first ":".
func (u UserID) Localpart() string {
	s := string(u)
	i := strings.IndexByte(s, ':')
	if len(s) == 0 || i < 1 {
		return ""
	}
	return s[1:i]
}

// Server returns the server name after the first ":".
func (u UserID) Server() ServerName {
	s := string(u)
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return ""
	}
	return ServerName(s[i+1:])
}

// String returns the user ID.
func (u UserID) String() string { return string(u) }

// Compliant reports whether the localpart is within U+0021 to U+007E and non
// empty. Non-compliant IDs must be accepted in events but SHOULD NOT be
// forwarded to clients outside the context of an event ("Historical User IDs").
func (u UserID) Compliant() bool {
	l := u.Localpart()
	if l == "" {
		return false
	}
	for i := 0; i < len(l); i++ {
		if l[i] < 0x21 || l[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidateLocalpart applies the grammar for new user IDs (appendices, "User
// Identifiers"): non-empty, only a-z, 0-9, ".", "_", "=", "-", "/" and "+".
// The 255-byte limit applies to the whole ID, so check that with ParseUserID.
func ValidateLocalpart(localpart string) error {
	if localpart == "" {
		return invalid("localpart", localpart, "empty")
	}
	for i := 0; i < len(localpart); i++ {
		c := localpart[i]
		switch {
		case c >= 'a' && c <= 'z', isDigit(c):
		case c == '.', c == '_', c == '=', c == '-', c == '/', c == '+':
		default:
			return invalid("localpart", localpart, fmt.Sprintf("character %q not allowed", c))
		}
	}
	return nil
}

// RoomID is a Matrix room ID: "!opaque:server" in room versions 1 to 11, or
// "!" followed by the URL-safe unpadded base64 reference hash of the create
// event, with no server part, in room version 12.
type RoomID string

// ParseRoomID accepts both forms. The domain-less form must be 43 characters
// of URL-safe base64 (a sha256 reference hash), the only domain-less form the
// spec defines (appendices, "Room IDs"; rooms/v12).
func ParseRoomID(s string) (RoomID, error) {
	if err := parseOpaqueOrHash(s, '!', "room ID", true); err != nil {
		return "", err
	}
	return RoomID(s), nil
}

// parseOpaqueOrHash validates "&opaque:server" or "&hash". For the hash form
// urlOnly restricts the alphabet to URL-safe base64.
func parseOpaqueOrHash(s string, sigil byte, kind string, urlOnly bool) error {
	if len(s) == 0 || s[0] != sigil {
		return invalid(kind, s, fmt.Sprintf("must start with %q", sigil))
	}
	if len(s) > MaxIDLength {
		return invalid(kind, s, "longer than 255 bytes")
	}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		if !isHashForm(s[1:], urlOnly) {
			return invalid(kind, s, "neither ':server' form nor a 43-character base64 hash")
		}
		return nil
	}
	if i == 1 {
		return invalid(kind, s, "empty opaque part")
	}
	if err := checkHistoricalLocalpart(s[1:i]); err != nil {
		return invalid(kind, s, err.Error())
	}
	if _, err := ParseServerName(s[i+1:]); err != nil {
		return invalid(kind, s, "bad server name")
	}
	return nil
}

// isHashForm reports whether h is an unpadded base64 sha256 (43 characters).
// The standard alphabet is used by room version 3 event IDs, the URL-safe one
// by later versions; a hash never mixes them.
func isHashForm(h string, urlOnly bool) bool {
	if len(h) != 43 {
		return false
	}
	std, url := false, false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case isAlpha(c), isDigit(c):
		case c == '+', c == '/':
			std = true
		case c == '-', c == '_':
			url = true
		default:
			return false
		}
	}
	if urlOnly {
		return !std
	}
	return !(std && url)
}

// Server returns the server part of a room ID of room versions 1 to 11. Room
// version 12 room IDs have none.
func (r RoomID) Server() (ServerName, bool) {
	i := strings.IndexByte(string(r), ':')
	if i < 0 {
		return "", false
	}
	return ServerName(r[i+1:]), true
}

// String returns the room ID.
func (r RoomID) String() string { return string(r) }

// EventID is a Matrix event ID: "$opaque:server" in room versions 1 and 2,
// "$" and the unpadded base64 reference hash afterwards (standard alphabet in
// version 3, URL-safe from version 4).
type EventID string

// ParseEventID accepts every event ID form of room versions 1 to 12. Which
// form a given room uses is checked by the event package.
func ParseEventID(s string) (EventID, error) {
	if err := parseOpaqueOrHash(s, '$', "event ID", false); err != nil {
		return "", err
	}
	return EventID(s), nil
}

// Server returns the server part of a room version 1 or 2 event ID.
func (e EventID) Server() (ServerName, bool) {
	i := strings.IndexByte(string(e), ':')
	if i < 0 {
		return "", false
	}
	return ServerName(e[i+1:]), true
}

// String returns the event ID.
func (e EventID) String() string { return string(e) }

// RoomAlias is a room alias, "#alias:server".
type RoomAlias string

// ParseRoomAlias parses a room alias. The localpart may hold any code points
// except ":" and NUL (appendices, "Room Aliases"); the whole alias must not
// exceed 255 bytes.
func ParseRoomAlias(s string) (RoomAlias, error) {
	local, server, err := splitSigilID(s, '#', "room alias")
	if err != nil {
		return "", err
	}
	if err := checkHistoricalLocalpart(local); err != nil {
		return "", invalid("room alias", s, err.Error())
	}
	if _, err := ParseServerName(server); err != nil {
		return "", invalid("room alias", s, "bad server name")
	}
	return RoomAlias(s), nil
}

// Localpart returns the part between "#" and the first ":".
func (a RoomAlias) Localpart() string { return UserID(a).Localpart() }

// Server returns the server name after the first ":".
func (a RoomAlias) Server() ServerName { return UserID(a).Server() }

// String returns the alias.
func (a RoomAlias) String() string { return string(a) }

// Package config loads Axon's configuration: defaults, then one YAML file,
// then environment variables, then command-line flags, each overriding the
// one before. Validation names the key at fault so a bad file is fixed in one
// look.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix"
)

// Components names the components, in start order.
var Components = []string{"userapi", "roomserver", "syncapi", "clientapi"}

// Config is the whole configuration of an Axon process.
type Config struct {
	ServerName string `yaml:"server_name"`
	DataDir    string `yaml:"data_dir"`
	// SigningKey is the ed25519 key file; relative paths are under DataDir.
	SigningKey string `yaml:"signing_key"`

	HTTP       HTTP       `yaml:"http"`
	Federation Federation `yaml:"federation"`
	Ops        Ops        `yaml:"ops"`

	// Database is a PostgreSQL URL for every component; empty means one
	// SQLite file per component under DataDir.
	Database string `yaml:"database"`
	// Databases overrides Database for single components.
	Databases map[string]string `yaml:"databases"`

	Log          Log          `yaml:"log"`
	Registration Registration `yaml:"registration"`
	RateLimits   RateLimits   `yaml:"rate_limits"`
	// AppServices are glob patterns of application service registration files.
	AppServices []string `yaml:"app_services"`
	// Internal maps a component to the host:port of its internal API. A
	// polylith process serves its own entry and calls the others there.
	Internal map[string]string `yaml:"internal"`
	Logging  Logging           `yaml:"logging"`
	// Complement switches on everything the Complement test harness expects.
	Complement bool `yaml:"complement"`
}

// HTTP is the client (and plain federation) listener.
type HTTP struct {
	Addr string `yaml:"addr"`
	// MaxBodyBytes limits request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Federation configures the TLS federation listener and outbound requests.
type Federation struct {
	// TLSAddr serves /_matrix/federation and /_matrix/key over TLS; empty = off.
	TLSAddr string `yaml:"tls_addr"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// CACert and CAKey, when set, mint a fresh certificate for the server name at every start.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// TrustedCAs are extra CA files trusted for outbound requests.
	TrustedCAs []string `yaml:"trusted_cas"`
	// AllowPrivateAddresses lets outbound requests reach loopback and private networks.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
}

// Ops is the metrics and pprof listener.
type Ops struct {
	Addr string `yaml:"addr"`
}

// Log is the event log between components.
type Log struct {
	// NATSURL is an external NATS JetStream server or cluster; empty embeds one under DataDir.
	NATSURL  string `yaml:"nats_url"`
	Prefix   string `yaml:"prefix"`
	Replicas int    `yaml:"replicas"`
}

// Registration controls account creation.
type Registration struct {
	Open         bool   `yaml:"open"`
	SharedSecret string `yaml:"shared_secret"`
	// RequiresToken makes /register ask for one of Tokens (the UIA stage
	// m.login.registration_token), whether Open is set or not.
	RequiresToken bool                `yaml:"requires_token"`
	Tokens        []RegistrationToken `yaml:"tokens"`
	// Guests allows guest accounts (POST /register?kind=guest).
	Guests bool `yaml:"guests"`
	// LoginTokens enables m.login.token: POST /login/get_token issues
	// short-lived single-use tokens to signed-in users.
	LoginTokens bool `yaml:"login_tokens"`
}

// RegistrationToken is a token for m.login.registration_token.
type RegistrationToken struct {
	// Token is 1–64 characters of [A-Za-z0-9._~-] (the spec's opaque
	// identifier grammar).
	Token string `yaml:"token"`
	// UsesAllowed bounds the registrations completed with it; 0 = no limit.
	UsesAllowed int64 `yaml:"uses_allowed"`
	// ExpiresAt is when it stops working (RFC 3339); empty = never.
	ExpiresAt time.Time `yaml:"expires_at"`
}

// ValidRegistrationToken reports whether s has the grammar of a
// registration token.
func ValidRegistrationToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return false
		}
	}
	return true
}

// RateLimits controls client request rate limiting: a token bucket per
// access token (or per address for requests without one).
type RateLimits struct {
	Enabled bool `yaml:"enabled"`
	// PerSecond is the sustained request rate of one client.
	PerSecond float64 `yaml:"per_second"`
	// Burst is how many requests a client may make at once.
	Burst int `yaml:"burst"`
}

// Logging controls the process log.
type Logging struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default is the configuration with no file, flags or environment.
func Default() Config {
	return Config{
		ServerName: "localhost:8008",
		DataDir:    "./axon-data",
		SigningKey: "signing.key",
		HTTP:       HTTP{Addr: "127.0.0.1:8008", MaxBodyBytes: 1 << 20},
		Ops:        Ops{Addr: "127.0.0.1:9008"},
		RateLimits: RateLimits{Enabled: true, PerSecond: 10, Burst: 50},
		Logging:    Logging{Level: "info", Format: "text"},
	}
}

// ErrHelp is returned when -h was asked for.
var ErrHelp = flag.ErrHelp

// Load builds the configuration from args (without the program name) and
// the environment lookup env.
func Load(args []string, env func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("axon", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", env("AXON_CONFIG"), "YAML configuration `file` (AXON_CONFIG)")
	var set []func(*Config)
	str := func(name, envName, usage string, apply func(*Config, string)) {
		fs.Func(name, usage+" ("+envName+")", func(v string) error {
			set = append(set, func(c *Config) { apply(c, v) })
			return nil
		})
	}
	str("server-name", "AXON_SERVER_NAME", "server name", func(c *Config, v string) { c.ServerName = v })
	str("data-dir", "AXON_DATA_DIR", "data directory", func(c *Config, v string) { c.DataDir = v })
	str("http", "AXON_HTTP_ADDR", "client/federation listen address", func(c *Config, v string) { c.HTTP.Addr = v })
	str("ops", "AXON_OPS_ADDR", "metrics/pprof listen address", func(c *Config, v string) { c.Ops.Addr = v })
	str("registration-shared-secret", "AXON_REGISTRATION_SHARED_SECRET", "shared secret for admin registration",
		func(c *Config, v string) { c.Registration.SharedSecret = v })
	str("database", "AXON_DATABASE", "database DSN (a postgres:// URL switches every component to PostgreSQL)",
		func(c *Config, v string) { c.Database = v })
	str("nats", "AXON_NATS_URL", "external NATS JetStream URL", func(c *Config, v string) { c.Log.NATSURL = v })
	var openReg optBool
	fs.Var(&openReg, "open-registration", "allow anyone to register (AXON_OPEN_REGISTRATION)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	c := Default()
	if *path != "" {
		data, err := os.ReadFile(*path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if err := Parse(data, &c); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&c, env); err != nil {
		return Config{}, err
	}
	for _, f := range set {
		f(&c)
	}
	if openReg.set {
		c.Registration.Open = openReg.v
	}
	if c.Complement {
		applyComplement(&c, env)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Parse decodes YAML into c, rejecting unknown keys.
func Parse(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

func applyEnv(c *Config, env func(string) string) error {
	strs := map[string]*string{
		"AXON_SERVER_NAME":                &c.ServerName,
		"AXON_DATA_DIR":                   &c.DataDir,
		"AXON_HTTP_ADDR":                  &c.HTTP.Addr,
		"AXON_OPS_ADDR":                   &c.Ops.Addr,
		"AXON_REGISTRATION_SHARED_SECRET": &c.Registration.SharedSecret,
		"AXON_DATABASE":                   &c.Database,
		"AXON_NATS_URL":                   &c.Log.NATSURL,
		"AXON_LOG_LEVEL":                  &c.Logging.Level,
	}
	for k, p := range strs {
		if v := env(k); v != "" {
			*p = v
		}
	}
	// Comma-separated registration tokens without use limit or expiry;
	// setting them requires tokens to register.
	if v := env("AXON_REGISTRATION_TOKENS"); v != "" {
		c.Registration.RequiresToken = true
		for _, tok := range strings.Split(v, ",") {
			c.Registration.Tokens = append(c.Registration.Tokens, RegistrationToken{Token: strings.TrimSpace(tok)})
		}
	}
	bools := map[string]*bool{
		"AXON_OPEN_REGISTRATION": &c.Registration.Open,
		"AXON_GUEST_ACCESS":      &c.Registration.Guests,
		"AXON_LOGIN_TOKENS":      &c.Registration.LoginTokens,
		"AXON_COMPLEMENT":        &c.Complement,
		"AXON_RATE_LIMITS":       &c.RateLimits.Enabled,
		// Outbound requests (federation, push gateways) to private networks.
		"AXON_ALLOW_PRIVATE_ADDRESSES": &c.Federation.AllowPrivateAddresses,
	}
	for k, p := range bools {
		if v := env(k); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a boolean", k, v)
			}
			*p = b
		}
	}
	return nil
}

// applyComplement sets what the Complement harness expects of a homeserver
// image: SERVER_NAME from the environment, client API on 8008, federation
// over TLS on 8448 with a certificate minted from the harness CA, open
// registration, the shared secret "complement", its application services,
// no rate limits, outbound federation to private addresses.
func applyComplement(c *Config, env func(string) string) {
	if s := env("SERVER_NAME"); s != "" {
		c.ServerName = s
	}
	c.HTTP.Addr = "0.0.0.0:8008"
	c.Federation.TLSAddr = "0.0.0.0:8448"
	c.Federation.CACert = "/complement/ca/ca.crt"
	c.Federation.CAKey = "/complement/ca/ca.key"
	c.Federation.TrustedCAs = append(c.Federation.TrustedCAs, "/complement/ca/ca.crt")
	c.Federation.AllowPrivateAddresses = true
	c.Registration.Open = true
	c.Registration.SharedSecret = "complement"
	c.RateLimits.Enabled = false
	c.AppServices = append(c.AppServices, "/complement/appservice/*.yaml")
}

// Validate checks the configuration, naming the key at fault.
func (c *Config) Validate() error {
	if _, err := matrix.ParseServerName(c.ServerName); err != nil {
		return fmt.Errorf("server_name: %q is not a valid server name: %w", c.ServerName, err)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if err := checkAddr(c.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	if c.Ops.Addr != "" {
		if err := checkAddr(c.Ops.Addr); err != nil {
			return fmt.Errorf("ops.addr: %w", err)
		}
	}
	if c.Federation.TLSAddr != "" {
		if err := checkAddr(c.Federation.TLSAddr); err != nil {
			return fmt.Errorf("federation.tls_addr: %w", err)
		}
	}
	if c.RateLimits.Enabled && (c.RateLimits.PerSecond <= 0 || c.RateLimits.Burst <= 0) {
		return errors.New("rate_limits: per_second and burst must be positive when enabled")
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		return errors.New("http.max_body_bytes: must be positive")
	}
	if err := checkDSN(c.Database); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	for name, dsn := range c.Databases {
		if !isComponent(name) {
			return fmt.Errorf("databases.%s: unknown component (want one of %s)", name, strings.Join(Components, ", "))
		}
		if err := checkDSN(dsn); err != nil {
			return fmt.Errorf("databases.%s: %w", name, err)
		}
	}
	for name, addr := range c.Internal {
		if !isComponent(name) {
			return fmt.Errorf("internal.%s: unknown component (want one of %s)", name, strings.Join(Components, ", "))
		}
		if err := checkAddr(addr); err != nil {
			return fmt.Errorf("internal.%s: %w", name, err)
		}
	}
	if c.Registration.RequiresToken && len(c.Registration.Tokens) == 0 {
		return errors.New("registration.tokens: requires_token is set but there are no tokens")
	}
	seen := map[string]bool{}
	for i, tok := range c.Registration.Tokens {
		if !ValidRegistrationToken(tok.Token) {
			return fmt.Errorf("registration.tokens[%d].token: %q is not 1-64 characters of A-Z a-z 0-9 . _ ~ -", i, tok.Token)
		}
		if seen[tok.Token] {
			return fmt.Errorf("registration.tokens[%d].token: %q is listed twice", i, tok.Token)
		}
		seen[tok.Token] = true
		if tok.UsesAllowed < 0 {
			return fmt.Errorf("registration.tokens[%d].uses_allowed: must not be negative", i)
		}
	}
	if c.Log.NATSURL != "" && !strings.HasPrefix(c.Log.NATSURL, "nats://") && !strings.HasPrefix(c.Log.NATSURL, "tls://") {
		return fmt.Errorf("log.nats_url: %q is not a nats:// URL", c.Log.NATSURL)
	}
	switch strings.ToLower(c.Logging.Level) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logging.level: %q is not one of debug, info, warn, error", c.Logging.Level)
	}
	return nil
}

func isComponent(name string) bool {
	for _, c := range Components {
		if c == name {
			return true
		}
	}
	return false
}

func checkAddr(a string) error {
	host, port, err := splitHostPort(a)
	if err != nil {
		return err
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", a)
	}
	return nil
}

func splitHostPort(a string) (string, string, error) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return "", "", fmt.Errorf("%q is not host:port", a)
	}
	return strings.Trim(a[:i], "[]"), a[i+1:], nil
}

func checkDSN(dsn string) error {
	if dsn == "" || sqlutil.IsPostgresDSN(dsn) || strings.HasPrefix(dsn, "sqlite:") || strings.HasPrefix(dsn, "file:") {
		return nil
	}
	return fmt.Errorf("%q is neither a postgres:// URL nor sqlite:<path>", dsn)
}

// DatabaseFor returns the DSN of component's database.
func (c *Config) DatabaseFor(component string) string {
	if dsn := c.Databases[component]; dsn != "" {
		return dsn
	}
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, component+".db")
}

// SigningKeyPath is the signing key file.
func (c *Config) SigningKeyPath() string {
	if filepath.IsAbs(c.SigningKey) {
		return c.SigningKey
	}
	return filepath.Join(c.DataDir, c.SigningKey)
}

type optBool struct{ v, set bool }

func (b *optBool) String() string   { return strconv.FormatBool(b.v) }
func (b *optBool) IsBoolFlag() bool { return true }
func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.v, b.set = v, true
	return nil
}

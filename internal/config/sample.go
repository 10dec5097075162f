package config

// Sample is the commented default configuration `axon generate-config` prints.
const Sample = `# Axon configuration. Every key may be left out; the values shown are the defaults.
# Environment variables override the file, and command-line flags override both.

# The server name: the part after ':' in user ids (@alice:example.org). It cannot
# change once users exist. (AXON_SERVER_NAME, --server-name)
server_name: localhost:8008

# Where SQLite databases, the embedded NATS JetStream store and the signing key
# live. (AXON_DATA_DIR, --data-dir)
data_dir: ./axon-data

# The ed25519 signing key, generated on first start. Relative to data_dir.
signing_key: signing.key

http:
  # Client-Server API (and plain-HTTP federation) listener. (AXON_HTTP_ADDR, --http)
  addr: 127.0.0.1:8008
  # Largest accepted request body, in bytes.
  max_body_bytes: 1048576

federation:
  # TLS listener for federation (/_matrix/federation, /_matrix/key); empty = off.
  tls_addr: ""
  tls_cert: ""
  tls_key: ""
  # A CA certificate and key: when set, a certificate for server_name is minted at every start.
  ca_cert: ""
  ca_key: ""
  # Extra CA files trusted for outbound federation requests.
  trusted_cas: []
  # Let outbound federation reach loopback and private networks (tests only).
  allow_private_addresses: false

ops:
  # Prometheus /metrics and /debug/pprof/ listener; keep it private. (AXON_OPS_ADDR, --ops)
  addr: 127.0.0.1:9008

# A postgres:// URL switches every component to PostgreSQL. Empty: one SQLite file
# per component under data_dir. (AXON_DATABASE, --database)
database: ""
# Per-component overrides, e.g. roomserver: postgres://.../rooms
databases: {}

log:
  # An external NATS JetStream server or cluster (nats://host:4222,...); empty embeds
  # one under data_dir. (AXON_NATS_URL, --nats)
  nats_url: ""
  # Prefix for stream names, so several servers can share one NATS.
  prefix: ""
  # Stream replicas on a NATS cluster.
  replicas: 0

registration:
  # Let anyone create an account. (AXON_OPEN_REGISTRATION, --open-registration)
  open: false
  # Secret for /_synapse/admin/v1/register. (AXON_REGISTRATION_SHARED_SECRET)
  shared_secret: ""
  # Registration with a token (UIA stage m.login.registration_token), open or not.
  # Tokens are 1-64 characters of A-Z a-z 0-9 . _ ~ -; uses_allowed 0 = unlimited;
  # expires_at is RFC 3339, empty = never. Uses are counted when a registration
  # completes. (AXON_REGISTRATION_TOKENS=tok1,tok2 sets unlimited tokens and
  # requires_token.)
  requires_token: false
  tokens: []
  #  - token: fBVFdqVE
  #    uses_allowed: 10
  #    expires_at: 2030-01-01T00:00:00Z
  # Guest accounts (POST /register?kind=guest); guests may only use the
  # endpoints the spec lists for them. (AXON_GUEST_ACCESS)
  guests: false
  # m.login.token: signed-in users get short-lived single-use login tokens from
  # POST /_matrix/client/v1/login/get_token (after re-authenticating). (AXON_LOGIN_TOKENS)
  login_tokens: false

# Client request rate limits: a token bucket per access token (or address).
# Exceeding it answers 429 M_LIMIT_EXCEEDED with retry_after_ms. (AXON_RATE_LIMITS)
rate_limits:
  enabled: true
  per_second: 10
  burst: 50

# Application service registration files (glob patterns).
app_services: []

# Polylith: the host:port of each component's internal API. A process serves its
# own entry and calls the others there. Empty in the monolith.
internal: {}

logging:
  level: info   # debug, info, warn, error (AXON_LOG_LEVEL)
  format: text  # text or json

# Everything the Complement test harness expects (AXON_COMPLEMENT).
complement: false
`

# The Axon container image: the monolith alone, as the Complement
# integration suite runs it. Build it with scripts/build-image, which
# compiles the static binary on the host and stages the build context this
# file expects (axon, and skel/ holding the empty directories below).
# Nothing is pulled: the image is FROM scratch and only COPYs.
#
# The binary reads its whole configuration from the environment when
# AXON_COMPLEMENT=1: SERVER_NAME names the server; the CA in /complement/ca
# signs the federation certificate minted at every start; registration
# files in /complement/appservice are loaded. State lives under /data, in
# the container's own filesystem, so that Complement's `docker commit` of a
# prepared server keeps it (a VOLUME would not be committed).
FROM scratch

# /tmp (mode 1777), /data, /complement/ca and /complement/appservice: scratch
# has no directories, and `docker cp` into a created container needs the
# target directory to exist.
COPY skel/ /
COPY axon /axon

# Outbound federation trusts the CA that Complement copies in before start.
ENV SSL_CERT_FILE=/complement/ca/ca.crt \
    AXON_COMPLEMENT=1

WORKDIR /data

# 8008: client API over plain HTTP. 8448: federation over HTTPS.
EXPOSE 8008 8448

# Complement waits for "healthy" before its first request, so the interval
# is the start-up latency it sees. The check itself gives up after 1s.
HEALTHCHECK --interval=1s --timeout=2s --retries=30 CMD ["/axon", "healthcheck"]

ENTRYPOINT ["/axon"]

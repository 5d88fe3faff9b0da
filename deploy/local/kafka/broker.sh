#!/usr/bin/env bash
# Fetch, start, stop and query the local Apache Kafka broker (KRaft, combined mode).
#
#   broker.sh fetch          copy the pinned jars from Maven Central into the cache (once)
#   broker.sh start          format storage once, start on 127.0.0.1, wait until it accepts connections
#   broker.sh stop           end the broker by its pid
#   broker.sh status         exit 0 and print the address when running, exit 3 otherwise
#
# Environment: KAFKAML_BROKER_PORT (default 9092), KAFKAML_BROKER_CONTROLLER_PORT (default port+1),
# KAFKAML_CACHE_DIR (default <project>/.cache), KAFKAML_BROKER_DIR (default $KAFKAML_CACHE_DIR/kafka),
# KAFKAML_BROKER_LIB (jar folder, default $KAFKAML_CACHE_DIR/kafka-lib), KAFKAML_JAVA (default java),
# KAFKAML_BROKER_START_TIMEOUT (seconds, default 60), KAFKAML_BROKER_HEAP (default 1g),
# KAFKAML_BROKER_JVM_OPTS (more JVM options, split on spaces, e.g. GC settings),
# KAFKAML_BROKER_PROPERTIES (more server.properties lines, key=value, split on spaces).
#
# KAFKAML_BROKER_SECURITY=sasl_ssl makes the client listener SASL_SSL with SCRAM-SHA-512 (the
# controller listener stays PLAINTEXT on loopback) and needs:
#   KAFKAML_BROKER_SSL_KEYSTORE   PEM file with the broker's unencrypted PKCS#8 key and its
#                                 certificate chain (SANs: IP 127.0.0.1, DNS localhost)
#   KAFKAML_BROKER_SSL_CA         PEM file of the CA that signed it (the broker trusts it for its
#                                 own inter-broker connection)
#   KAFKAML_BROKER_SCRAM_USERS    `name=password` pairs, split on spaces; they are added when the
#                                 storage is formatted (a data dir's first start) and the first
#                                 is the broker's own inter-broker user
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${KAFKAML_CACHE_DIR:-$root/.cache}
port=${KAFKAML_BROKER_PORT:-9092}
controller_port=${KAFKAML_BROKER_CONTROLLER_PORT:-$((port + 1))}
security=${KAFKAML_BROKER_SECURITY:-plaintext}
dir=${KAFKAML_BROKER_DIR:-$cache/kafka}
lib=${KAFKAML_BROKER_LIB:-$cache/kafka-lib}
pidfile=$dir/broker.pid
timeout=${KAFKAML_BROKER_START_TIMEOUT:-60}
java=${KAFKAML_JAVA:-java}

die() { echo "broker: $*" >&2; exit 1; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka"; then
    echo "$pid"
    return 0
  fi
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch() {
  local stamp="$lib/.fetched-$(sha256sum "$here/pom.xml" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the broker; install maven"
  echo "broker: fetching Apache Kafka jars with Maven into $lib"
  rm -rf "$lib" && mkdir -p "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$cache/kafka-fetch.log" 2>&1 \
    || die "Maven could not fetch the broker; see $cache/kafka-fetch.log"
  touch "$stamp"
}

scram_users=()

check_security() {
  case "$security" in
    plaintext) listener=PLAINTEXT ;;
    sasl_ssl) listener=SASL_SSL ;;
    *) die "KAFKAML_BROKER_SECURITY must be plaintext or sasl_ssl, not '$security'" ;;
  esac
  [ "$listener" = PLAINTEXT ] && return 0
  local name
  for name in KAFKAML_BROKER_SSL_KEYSTORE KAFKAML_BROKER_SSL_CA; do
    [ -r "${!name:-}" ] || die "a sasl_ssl broker needs $name, a readable PEM file"
  done
  read -r -a scram_users <<<"${KAFKAML_BROKER_SCRAM_USERS:-}"
  [ "${#scram_users[@]}" -gt 0 ] || die "a sasl_ssl broker needs KAFKAML_BROKER_SCRAM_USERS (name=password ...)"
  local user
  for user in "${scram_users[@]}"; do
    [[ "$user" =~ ^[A-Za-z0-9._-]+=[A-Za-z0-9._~+/=-]+$ ]] \
      || die "KAFKAML_BROKER_SCRAM_USERS: '${user%%=*}' is not name=password (letters, digits, ._~+/=-)"
  done
}

# The SASL_SSL listener: SCRAM-SHA-512 for clients and for the broker itself (the first user).
security_properties() {
  local inter_user=${scram_users[0]%%=*} inter_password=${scram_users[0]#*=}
  cat <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$inter_user" password="$inter_password";
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKAML_BROKER_SSL_KEYSTORE
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKAML_BROKER_SSL_CA
ssl.client.auth=none
PROPS
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listener://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=$listener://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$listener
inter.broker.listener.name=$listener
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=168
message.max.bytes=20971520
replica.fetch.max.bytes=20971520
PROPS
  if [ "$listener" != PLAINTEXT ]; then security_properties >>"$dir/server.properties"; fi
  local extra=()
  read -r -a extra <<<"${KAFKAML_BROKER_PROPERTIES:-}"
  if [ "${#extra[@]}" -gt 0 ]; then printf '%s\n' "${extra[@]}" >>"$dir/server.properties"; fi
}

java_cmd() {
  command -v "$java" >/dev/null || die "Java 17 or newer is needed to run the broker, and '$java' was not found; install openjdk-17-jre-headless or set KAFKAML_JAVA"
  echo "$java"
}

start() {
  local pid
  if pid=$(running_pid); then
    echo "broker: already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  java=$(java_cmd)
  port_open "$port" && die "port $port is already in use by another program; set KAFKAML_BROKER_PORT"
  port_open "$controller_port" && die "port $controller_port is already in use; set KAFKAML_BROKER_CONTROLLER_PORT"
  check_security
  fetch
  write_config
  local log4j="$dir/log4j.properties"
  cat >"$log4j" <<LOG
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
LOG
  # ZGC, not G1: on the 2-core machine kind G1's young pauses took 25-50 ms every 1-2 s under
  # transactional load, some 150-300 ms, and each one stalls every transaction in flight
  # (bench/inference.py (d): p99 167-200 ms with G1, 32 ms with ZGC once the JVM had warmed up).
  local extra=() collector=(-XX:+UseZGC) option
  read -r -a extra <<<"${KAFKAML_BROKER_JVM_OPTS:-}"
  for option in "${extra[@]}"; do
    case "$option" in -XX:+Use*GC) collector=() ;; esac # the options choose the collector
  done
  local jvm=(-Xms256m "-Xmx${KAFKAML_BROKER_HEAP:-1g}" "${collector[@]}" -Djava.awt.headless=true
    "${extra[@]}" "-Dlog4j.configuration=file:$log4j" "-Dkafka.logs.dir=$dir/logs" -cp "$lib/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id scram=() user
    cluster_id=$("$java" "${jvm[@]}" kafka.tools.StorageTool random-uuid)
    for user in "${scram_users[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
    done
    "$java" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" "${scram[@]}" >"$dir/logs/format.log" 2>&1 \
      || die "formatting KRaft storage failed; see $dir/logs/format.log"
  fi
  setsid nohup "$java" "${jvm[@]}" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  local waited=0
  until port_open "$port"; do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; die "the broker exited during start-up; see $dir/logs/server.log and $dir/logs/stdout.log"; }
    [ "$waited" -ge $((timeout * 10)) ] && { kill "$pid"; rm -f "$pidfile"; die "the broker did not accept connections within ${timeout}s"; }
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "broker: running (pid $pid) on 127.0.0.1:$port ($listener), data in $dir/data"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pidfile"
    echo "broker: not running"
    return 0
  fi
  kill "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 300 ]; then kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  echo "broker: stopped (pid $pid)"
}

status() {
  local pid
  if pid=$(running_pid); then
    echo "broker: running (pid $pid) on 127.0.0.1:$port"
  else
    echo "broker: not running"
    return 3
  fi
}

case "${1:-}" in
  fetch) mkdir -p "$cache"; fetch ;;
  start) mkdir -p "$cache"; start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac

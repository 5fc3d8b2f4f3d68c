# Sourced by `install --demo`: certsep's main job on one machine, with a local Pebble CA and the
# local nginx standing in for a real CA and a real site. Uses install's say, die, put_file,
# put_text, make_challenge_dir, systemd_running, run_install and run_uninstall.

DEMO_LIB=/var/lib/certsep-demo
DEMO_RUN=/run/certsep-demo
DEMO_LOG=/var/log/certsep-demo
DEMO_NGINX_CONF=/etc/nginx/conf.d/certsep-demo.conf
DEMO_WEBROOT=$DEMO_LIB/webroot
DEMO_TARGET=/etc/nginx/certsep/demo
DEMO_DOMAIN=demo.certsep.test
DEMO_TLS_PORT=8443
DEMO_MARKER='# certsep install --demo'
# Pebble's and challtestsrv's fixed loopback ports (Pebble's defaults; 5002 is where it validates http-01).
PEBBLE_DIR_URL=https://127.0.0.1:14000/dir
PEBBLE_ROOTS_URL=https://127.0.0.1:15000/roots/0
DEMO_DNS=127.0.0.1:8053
DEMO_DNS_MGMT=127.0.0.1:8055
# The demo's own config when the admin's certsep.yaml is something else; its daemons then run
# under the supervisor with their own directories, never touching the admin's.
DEMO_SIDE_CONFIG=$CONFIG_DIR/certsep-demo.yaml
DEMO_CONFIG=
DEMO_SIDE=

# --- the host ----------------------------------------------------------------------------------
demo_check_host() {
  local major
  command -v node >/dev/null || die "--demo needs node >= 20 (Debian 12: apt-get install nodejs npm, or NodeSource's node 20)"
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "--demo needs node >= 20, found $(node --version)"
}

demo_install_packages() {
  local missing=() program package
  for program in pebble:pebble pebble-challtestsrv:pebble nginx:nginx openssl:openssl curl:curl; do
    command -v "${program%%:*}" >/dev/null || missing+=("${program#*:}")
  done
  [ -d "$SOURCE/node_modules" ] || [ -f "$SOURCE/dist/certsepctl.mjs" ] || command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -gt 0 ] || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing from Debian: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  for package in "${missing[@]}"; do dpkg -s "$package" >/dev/null 2>&1 || die "apt-get did not install $package"; done
}

# dist/ is rebuilt when any source file is newer than the oldest bundle; node_modules when the
# lock file is newer than npm's record of what it installed.
demo_build() {
  local stamp=$SOURCE/node_modules/.package-lock.json newer
  if [ ! -f "$stamp" ] || [ "$SOURCE/package-lock.json" -nt "$stamp" ]; then
    say "npm ci (the N-API addon builds against Node's headers)"
    if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
    (cd "$SOURCE" && npm ci --no-audit --no-fund)
  fi
  newer=$(demo_sources_newer_than_dist)
  if [ -n "$newer" ]; then
    say "building dist/ ($newer)"
    (cd "$SOURCE" && node build.mjs)
  fi
}
demo_sources_newer_than_dist() {
  local oldest= bundle
  for bundle in "${BUNDLES[@]}"; do
    [ -f "$SOURCE/dist/$bundle" ] || { echo "dist/$bundle is missing"; return; }
    if [ -z "$oldest" ] || [ "$SOURCE/dist/$bundle" -ot "$oldest" ]; then oldest=$SOURCE/dist/$bundle; fi
  done
  (cd "$SOURCE" && find . \( -path ./node_modules -o -path ./dist -o -path ./test -o -path ./bench -o -path ./.git \) -prune -o \
    \( -name '*.ts' -o -name '*.cc' -o -name build.mjs -o -name package-lock.json \) -newer "$oldest" -print | head -1 |
    sed 's/$/ is newer than dist/')
}

# --- the config --------------------------------------------------------------------------------
demo_is_demo_config() { [ -f "$1" ] && head -1 "$1" | grep -qF "$DEMO_MARKER"; }

demo_choose_config() {
  if [ ! -e "$CONFIG" ] || demo_is_demo_config "$CONFIG"; then
    DEMO_CONFIG=$CONFIG
  else
    DEMO_CONFIG=$DEMO_SIDE_CONFIG
    DEMO_SIDE=1
    say "$CONFIG exists and is not the demo's: it stays as it is. The demo would have written:"
    demo_render_config | sed 's/^/    /'
    say "the demo uses $DEMO_CONFIG instead, with its own sockets, state and audit directories"
  fi
}

demo_render_config() {
  local run=/run/certsep state=/var/lib/certsep audit=/var/log/certsep reload
  if [ -n "$DEMO_SIDE" ]; then run=$DEMO_RUN/sockets state=$DEMO_LIB/state audit=$DEMO_LOG/audit; fi
  if systemd_running && [ -z "$DEMO_SIDE" ]; then reload='{ systemd: nginx.service, action: reload }'
  else reload='{ command: ["nginx", "-s", "reload"] }'; fi
  sed -e "s#@RUN_DIR@#$run#" -e "s#@STATE_DIR@#$state#" -e "s#@AUDIT_DIR@#$audit#" \
    -e "s#@PEBBLE_TLS_CA@#$DEMO_LIB/pebble/ca.pem#" -e "s#@NGINX_RELOAD@#$reload#" \
    -e "s#@WEBROOT@#$DEMO_WEBROOT#" -e "s#@TARGET_DIR@#$DEMO_TARGET#" "$SOURCE/demo/certsep-demo.yaml"
}

demo_write_config() {
  if [ -e "$DEMO_CONFIG" ] && ! demo_is_demo_config "$DEMO_CONFIG"; then return 0; fi
  install -d -m 0755 -o 0 -g 0 "$CONFIG_DIR"
  # Not a pipe: put_text counts what it writes in CHANGED, which a subshell would lose.
  put_text "$DEMO_CONFIG" 0644 < <(demo_render_config)
}

# --- Pebble ------------------------------------------------------------------------------------
demo_alive() { [ -s "$DEMO_RUN/$1.pid" ] && kill -0 "$(cat "$DEMO_RUN/$1.pid")" 2>/dev/null; }

# Debian's pebble ships no certificate for its own HTTPS listener: a CA and a localhost
# certificate, made once. Pebble runs as nobody, so its key is readable by group nogroup only.
demo_make_pebble_tls() {
  local dir=$DEMO_LIB/pebble
  [ -s "$dir/cert.pem" ] && return 0
  install -d -m 0750 -o 0 -g nogroup "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -days 3650 -subj "/CN=certsep demo Pebble HTTPS CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/key.pem" -out "$dir/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 3650 \
    -out "$dir/cert.pem" -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n') 2>/dev/null
  rm -f "$dir/server.csr" "$dir/ca.srl"
  chmod 0600 "$dir/ca.key"
  chown root:nogroup "$dir/key.pem" && chmod 0640 "$dir/key.pem"
  # acmed (certsep-acme) reads the CA through trustBundle.
  chmod 0644 "$dir/ca.pem" "$dir/cert.pem"
  chmod 0755 "$dir"
  say "made Pebble's HTTPS certificate in $dir"
}

# demo_spawn NAME PROGRAM ARGS... — in the background, as nobody, own session, pid file, log file.
demo_spawn() {
  local name=$1
  shift
  setsid setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs "$@" \
    >"$DEMO_LOG/$name.log" 2>&1 </dev/null &
  echo $! > "$DEMO_RUN/$name.pid"
}

demo_start_pebble() {
  install -d -m 0755 -o 0 -g 0 "$DEMO_LIB" "$DEMO_RUN" "$DEMO_LOG"
  demo_make_pebble_tls
  if demo_alive pebble && demo_alive challtestsrv; then say "Pebble is running (pid $(cat "$DEMO_RUN/pebble.pid"))"; return 0; fi
  demo_stop_process pebble
  demo_stop_process challtestsrv
  cat <<EOF | put_text "$DEMO_LIB/pebble/pebble-config.json" 0644
{ "pebble": { "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$DEMO_LIB/pebble/cert.pem", "privateKey": "$DEMO_LIB/pebble/key.pem",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "certificateValidityPeriod": 7776000 } }
EOF
  # challtestsrv is Pebble's DNS: 127.0.0.1 for every name, no AAAA; its own challenge servers off.
  demo_spawn challtestsrv pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "$DEMO_DNS" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "$DEMO_DNS_MGMT"
  # No artificial validation delay, and no rejection of good nonces: Pebble's test-suite defaults
  # would make a demo issuance slow and flaky.
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
    demo_spawn pebble pebble -config "$DEMO_LIB/pebble/pebble-config.json" -dnsserver "$DEMO_DNS"
  demo_wait "Pebble's directory at $PEBBLE_DIR_URL" curl -sf --cacert "$DEMO_LIB/pebble/ca.pem" -o /dev/null "$PEBBLE_DIR_URL" ||
    die "Pebble did not start; see $DEMO_LOG/pebble.log and $DEMO_LOG/challtestsrv.log"
  # Pebble makes a new root at every start: keep them all, so a certificate issued by an earlier
  # run still verifies.
  curl -sf --cacert "$DEMO_LIB/pebble/ca.pem" "$PEBBLE_ROOTS_URL" >> "$DEMO_LIB/pebble-roots.pem"
  say "started Pebble on 127.0.0.1:14000 (pid $(cat "$DEMO_RUN/pebble.pid")) and its DNS on $DEMO_DNS"
}

# demo_wait WHAT COMMAND... — up to 20 s.
demo_wait() {
  local what=$1 i
  shift
  for i in $(seq 100); do "$@" && return 0; sleep 0.2; done
  say "gave up waiting for $what"
  return 1
}

demo_stop_process() {
  local name=$1 pid i
  [ -s "$DEMO_RUN/$name.pid" ] || return 0
  pid=$(cat "$DEMO_RUN/$name.pid")
  if kill "$pid" 2>/dev/null; then
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped $name (pid $pid)"
  fi
  rm -f "$DEMO_RUN/$name.pid"
}

# --- nginx -------------------------------------------------------------------------------------
# nginx needs a certificate before certsep issued one: a self-signed placeholder, which the first
# renewal replaces (no certificate is installed yet, so it is due). Made before the normal install,
# so the target directory exists when install writes privd's ReadWritePaths for it.
demo_make_placeholder() {
  [ -s "$DEMO_TARGET/fullchain.pem" ] && return 0
  install -d -m 0755 -o 0 -g 0 "$(dirname "$DEMO_TARGET")" "$DEMO_TARGET"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=certsep demo placeholder" \
    -keyout "$DEMO_TARGET/privkey.pem" -out "$DEMO_TARGET/fullchain.pem" 2>/dev/null
  chmod 0640 "$DEMO_TARGET/privkey.pem" "$DEMO_TARGET/fullchain.pem"
  say "wrote a self-signed placeholder into $DEMO_TARGET"
}

demo_configure_nginx() {
  make_challenge_dir "$DEMO_WEBROOT"
  local before=$CHANGED
  put_text "$DEMO_NGINX_CONF" 0644 < <(sed -e "s#@WEBROOT@#$DEMO_WEBROOT#" -e "s#@TARGET_DIR@#$DEMO_TARGET#" "$SOURCE/demo/nginx-demo.conf")
  nginx -t -q || die "nginx -t fails with $DEMO_NGINX_CONF; see the lines above"
  if demo_nginx_running; then
    if [ "$CHANGED" != "$before" ]; then demo_reload_nginx; say "reloaded nginx"; fi
  else
    if systemd_running; then systemctl start nginx.service; else nginx </dev/null >>"$DEMO_LOG/nginx.log" 2>&1; touch "$DEMO_RUN/nginx.started"; fi
    say "started nginx"
  fi
  demo_wait "nginx on 127.0.0.1:5002" curl -s -o /dev/null http://127.0.0.1:5002/ || die "nginx does not answer on 127.0.0.1:5002"
}
demo_nginx_running() { [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; }
demo_nginx_stopped() { ! demo_nginx_running; }
demo_reload_nginx() { if systemd_running; then systemctl reload nginx.service; else kill -HUP "$(cat /run/nginx.pid)"; fi; }

# --- the daemons -------------------------------------------------------------------------------
demo_start_daemons() {
  local run_dir daemon
  run_dir=$(sed -nE 's/^  runDir: (.*)$/\1/p' "$DEMO_CONFIG")
  run_dir=${run_dir:-/run/certsep}
  if systemd_running && [ -z "$DEMO_SIDE" ]; then
    say "the daemons are socket-activated by systemd"
  elif demo_alive supervisor && [ "$CHANGED" = 0 ]; then
    say "certsep-supervisor is running (pid $(cat "$DEMO_RUN/supervisor.pid"))"
  else
    demo_stop_process supervisor
    # Left behind by a stopped supervisor; removed so that waiting for them means waiting for
    # the new daemons.
    for daemon in "${DAEMONS[@]}"; do rm -f "$run_dir/$daemon.sock"; done
    setsid node "$LIB/certsep-supervisor.mjs" --config "$DEMO_CONFIG" >>"$DEMO_LOG/supervisor.log" 2>&1 </dev/null &
    echo $! > "$DEMO_RUN/supervisor.pid"
    say "started certsep-supervisor (pid $!, log $DEMO_LOG/supervisor.log)"
  fi
  for daemon in "${DAEMONS[@]}"; do
    demo_wait "$run_dir/$daemon.sock" test -S "$run_dir/$daemon.sock" || die "$daemon did not start; see $DEMO_LOG/supervisor.log"
  done
}

demo_renew() {
  local code=0
  say "certsepctl renew --all"
  certsepctl --config "$DEMO_CONFIG" renew --all || code=$?
  case $code in
    0) say "renewed and installed" ;;
    2) say "nothing was due" ;;
    *) die "certsepctl renew failed (exit $code); see $DEMO_LOG/supervisor.log and certsepctl --config $DEMO_CONFIG status" ;;
  esac
}

# nginx picks up a reload with new workers a moment later, so the check retries.
demo_verify_served() {
  local issuer
  demo_wait "nginx to serve a certificate from Pebble" curl -sf -o /dev/null --cacert "$DEMO_LIB/pebble-roots.pem" \
    --resolve "$DEMO_DOMAIN:$DEMO_TLS_PORT:127.0.0.1" "https://$DEMO_DOMAIN:$DEMO_TLS_PORT/" ||
    die "nginx on 127.0.0.1:$DEMO_TLS_PORT does not serve a certificate for $DEMO_DOMAIN that chains to Pebble's root"
  issuer=$(openssl s_client -connect "127.0.0.1:$DEMO_TLS_PORT" -servername "$DEMO_DOMAIN" </dev/null 2>/dev/null |
    openssl x509 -noout -issuer -enddate | tr '\n' ' ')
  say "nginx serves https://$DEMO_DOMAIN:$DEMO_TLS_PORT/ (127.0.0.1) with a certificate that chains to Pebble's root: $issuer"
}

run_demo() {
  local started=$SECONDS
  demo_check_host
  demo_install_packages
  demo_build
  demo_choose_config
  demo_write_config
  demo_make_placeholder
  run_install
  demo_start_pebble
  demo_configure_nginx
  demo_start_daemons
  demo_renew
  demo_verify_served
  say "demo done in $((SECONDS - started)) s; stop it with: $0 --demo --stop (or --demo --uninstall)"
  if [ -n "$DEMO_SIDE" ]; then say "the demo's certsepctl commands need --config $DEMO_CONFIG"; fi
  certsepctl --config "$DEMO_CONFIG" status
}

# --- stop and uninstall ------------------------------------------------------------------------
run_demo_stop() {
  demo_stop_process supervisor
  demo_stop_process pebble
  demo_stop_process challtestsrv
  if [ -e "$DEMO_RUN/nginx.started" ] && demo_nginx_running; then
    # Signalled directly: `nginx -s` writes a notice to stderr even when all is well.
    kill -QUIT "$(cat /run/nginx.pid)"
    demo_wait "nginx to exit" demo_nginx_stopped || die "nginx did not exit"
    say "stopped nginx (the demo started it)"
  fi
  rm -f "$DEMO_RUN/nginx.started"
}

run_demo_uninstall() {
  local config
  run_demo_stop
  if [ -e "$DEMO_NGINX_CONF" ]; then
    remove_path "$DEMO_NGINX_CONF"
    if demo_nginx_running; then demo_reload_nginx; fi
  fi
  remove_path "$DEMO_TARGET"
  rmdir "$(dirname "$DEMO_TARGET")" 2>/dev/null || true
  for config in "$CONFIG" "$DEMO_SIDE_CONFIG"; do
    if demo_is_demo_config "$config"; then remove_path "$config"; fi
  done
  run_uninstall
  rmdir "$CONFIG_DIR" 2>/dev/null || true
  remove_path "$DEMO_LIB"
  remove_path "$DEMO_LOG"
  remove_path "$DEMO_RUN"
}
